"""Status polls per server lifecycle: the batched waiter vs one GET per waiting server.

    .venv/bin/python bench/waiter.py [--users 200] [--seconds 20] [--interval 1.0]

One Locust run, in this process, against one embedded cloud: `--users` users boot and
delete servers waiting with the batched waiter (one changes-since list per interval for
everyone) and as many users do the same with one `GET /servers/{id}` per waiting server,
side by side. A lifecycle is one boot-until-ACTIVE plus one delete-until-gone.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gevent  # noqa: E402
import locust  # noqa: E402,F401  (patches with gevent first)
from _common import figure, locust_environment  # noqa: E402

from novastress_locust.actions.servers import server_create_destroy  # noqa: E402
from novastress_locust.fakecloud import EmbeddedCloud  # noqa: E402
from novastress_locust.user import NovaUser  # noqa: E402


class Batched(NovaUser):
    waiter_kind = "batched"
    tasks = [server_create_destroy]


class PerServer(NovaUser):
    waiter_kind = "per-server"
    tasks = [server_create_destroy]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200, help="users per waiter (default 200)")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--interval", type=float, default=1.0, help="status poll interval")
    args = parser.parse_args()

    with EmbeddedCloud(faults="none", delay_scale=1.0, seed=7) as cloud:
        environment, runner, state = locust_environment(
            cloud.credentials(), [Batched, PerServer], "--status-poll-interval", str(args.interval), "--prefix", "bench")
        total = 2 * args.users
        runner.start(total, spawn_rate=total)
        gevent.sleep(args.seconds)
        runner.stop()  # users are stopped mid-action: they delete what they made
        waiters = {key.rsplit("/", 1)[1]: waiter for key, waiter in state.waiters.items()}
        stats = environment.stats
        print(f"{args.users} users per waiter, {args.seconds:g} s, poll interval {args.interval:g} s")
        figures = {}
        for kind, waiter in (("batched", waiters["batched"]), ("per-server", waiters["per-server"])):
            lifecycles = waiter.waits / 2
            per_lifecycle = waiter.polls / lifecycles if lifecycles else float("nan")
            figures[kind] = per_lifecycle
            print(f"  {kind:10s}: {waiter.polls:6d} status calls for {lifecycles:7.1f} lifecycles "
                  f"= {per_lifecycle:.3f} per lifecycle")
        action = stats.get("server_create_destroy", "ACTION")
        print(f"  actions: {action.num_requests} ({action.num_failures} failed)")
        ratio = figures["batched"] / figures["per-server"]
        figure(f"status polls per lifecycle, batched waiter ({args.users} users)", "<= 0.1x per-server",
               f"{figures['batched']:.3f} (per-server {figures['per-server']:.3f})", ratio, ratio <= 0.1)
        print(f"ratio: {ratio:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
