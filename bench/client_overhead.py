"""Client CPU per API call: NovaUser's client vs Locust's HttpUser and FastHttpUser clients.

    .venv/bin/python bench/client_overhead.py [--calls 3000] [--rounds 5]

Same run, same embedded endpoint (`GET /compute/v2.1/flavors` with a token), one greenlet
per client, blocks interleaved round by round so drift hits every client alike. CPU is
this process's (the cloud runs in its own process); each call fires its Locust request
event, as it would under load. NovaUser is measured with both `--transport` choices (plain
requests, and geventhttpclient under keystoneauth: novastress_locust/transport.py). Also
shown: keystoneauth over Locust's HttpSession as the transport (HttpSession fires the
events), the other way to build NovaUser.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from locust import events  # noqa: E402  (patches with gevent first)
from locust.clients import HttpSession  # noqa: E402
from locust.contrib.fasthttp import FastHttpSession  # noqa: E402
from _common import figure, locust_environment  # noqa: E402

from novastress_locust.fakecloud import EmbeddedCloud  # noqa: E402
from novastress_locust.user import NovaUser, OpenStackClient  # noqa: E402

PATH = "/flavors"


class Idle(NovaUser):
    tasks = []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000, help="calls per client per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    with EmbeddedCloud(faults="none", delay_scale=0.0, seed=7) as cloud:
        environment, runner, state = locust_environment(cloud.credentials(), [Idle])

        state.options.transport = "requests"
        nova = OpenStackClient(state, state.target, "bench")
        compute = nova.compute
        state.options.transport = "fast"
        fast_compute = OpenStackClient(state, state.target, "bench-fast").compute
        token = nova.session.get_token()
        url = compute.endpoint + PATH
        headers = {"X-Auth-Token": token, **compute.headers}
        http = HttpSession(base_url=cloud.base_url, request_event=events.request, user=None)
        fast = FastHttpSession(base_url=cloud.base_url, request_event=events.request, user=None)
        ks_over_http = state.target.session(state.auth(state.target),
                                            transport=HttpSession(base_url=cloud.base_url,
                                                                  request_event=events.request, user=None))

        clients = {
            "NovaUser, --transport requests": lambda: compute.get(PATH),
            "NovaUser, --transport fast": lambda: fast_compute.get(PATH),
            "keystoneauth over HttpSession": lambda: ks_over_http.get(url, headers=compute.headers,
                                                                     raise_exc=False),
            "HttpUser (HttpSession)": lambda: http.get(url, headers=headers, name="flavors"),
            "FastHttpUser (FastHttpSession)": lambda: fast.get(url, headers=headers, name="flavors"),
        }
        samples: dict[str, list[float]] = {name: [] for name in clients}
        for call in clients.values():  # warm connections and caches
            for _ in range(50):
                call()
        for _ in range(args.rounds):
            for name, call in clients.items():
                started = time.process_time()
                for _ in range(args.calls):
                    call()
                samples[name].append((time.process_time() - started) / args.calls * 1e6)
        failures = sum(entry.num_failures for entry in environment.stats.entries.values())
        print(f"client CPU per call, median of {args.rounds} rounds x {args.calls} calls "
              f"(GET {PATH}, {failures} failures):")
        medians = {name: statistics.median(values) for name, values in samples.items()}
        for name, value in medians.items():
            print(f"  {name:38s} {value:7.1f} us")
        plain, baseline = medians["NovaUser, --transport requests"], medians["HttpUser (HttpSession)"]
        ours = medians["NovaUser, --transport fast"]
        fast = medians["FastHttpUser (FastHttpSession)"]
        print(f"  (NovaUser fast / FastHttpUser: {ours / fast:.2f}; fast / requests transport: {ours / plain:.2f})")
        figure("client CPU per API call, NovaUser vs HttpUser", "<= 1.2x HttpUser",
               f"{ours:.0f} us with --transport fast (requests transport {plain:.0f} us, HttpUser "
               f"{baseline:.0f} us, FastHttpUser {fast:.0f} us)", ours / baseline, ours / baseline <= 1.2)
        figure("client CPU per API call, --transport fast vs requests", "(report)",
               f"{ours:.0f} us (requests {plain:.0f} us)", ours / plain, None,
               "ratio: the fast transport (geventhttpclient under keystoneauth) vs plain requests")
        print(f"ratio: {ours / baseline:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
