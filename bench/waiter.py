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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gevent  # noqa: E402
from locust import events  # noqa: E402  (patches with gevent first)
from locust.argument_parser import get_parser  # noqa: E402
from locust.env import Environment  # noqa: E402

from novastress_locust.actions.servers import server_create_destroy  # noqa: E402
from novastress_locust.fakecloud import EmbeddedCloud  # noqa: E402
from novastress_locust.plugin import run_state  # noqa: E402
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
        creds = cloud.credentials()
        options = get_parser().parse_args([
            "-f", __file__, "--headless", f"--os-auth-url={creds['auth_url']}",
            f"--os-username={creds['username']}", f"--os-password={creds['password']}",
            f"--os-project-name={creds['project_name']}", "--status-poll-interval", str(args.interval),
            "--prefix", "bench"])
        environment = Environment(user_classes=[Batched, PerServer], events=events, parsed_options=options)
        runner = environment.create_local_runner()
        events.init.fire(environment=environment, runner=runner, web_ui=None)
        total = 2 * args.users
        runner.start(total, spawn_rate=total)
        gevent.sleep(args.seconds)
        runner.stop()  # users are stopped mid-action: they delete what they made
        state = run_state(environment)
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
        print(f"ratio: {figures['batched'] / figures['per-server']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
