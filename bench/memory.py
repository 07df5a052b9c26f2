"""Memory at scale: worker RSS per 1,000 idle-waiting NovaUsers, the embedded cloud with 10,000
live servers, and the log watcher while a watched file grows from 1 MB to 1 GB.

    .venv/bin/python bench/memory.py [--users 1000] [--live-servers 10000] [--grow-mb 1024]

Each figure is measured in a fresh process, side by side with a baseline of the same run:
* users: N NovaUsers each waiting for its server to build (the build takes an hour; they sit
  in the batched waiter) vs N Locust HttpUsers that made one request and sleep;
* cloud: its RSS with `--live-servers` servers vs right after start;
* log watcher: one file (in a temp dir, deleted after) grown by `--step-mb` between checks,
  from 1 MB to `--grow-mb`, vs its RSS at 1 MB; the peak (VmHWM) counts.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import LOADGEN_CORE, SERVER_CORE, bench_cloud, bulk_create, figure, pin, rss_mb  # noqa: E402

USERS_TARGET_MB, USERS_STRETCH_MB = 100.0, 50.0
CLOUD_TARGET_MB = 300.0
WATCHER_FLAT_MB = 20.0     # "flat": the peak stays within this of the RSS at 1 MB
LINE = ("2026-11-28 05:41:32.753 18814 INFO nova.compute.manager [None req-660e8d24-ff54-427e-9bd3-"
        "fd57bd3dcc60 1bb6da0075394feb97f778bd1c32c376 a1292b0ea6bc4c62bfc54f2cf84e7bb3 - - default "
        "default] [instance: 453c39e4-ae0e-4fcd-b50b-8cc5e725c677] Took 0.02 seconds to deallocate network.\n")
ERROR_LINE = ("2026-11-28 05:41:33.001 18814 ERROR nova.compute.manager [None req-00000000-0000-4000-8000-"
              "000000000001 - - - - - -] bench error\n")


# -- users -----------------------------------------------------------------------------------
def users_child(credentials: dict, kind: str, users: int) -> dict:
    """In a fresh process: RSS before and after `users` idle-waiting users of `kind`."""
    import gc

    import gevent
    from locust import HttpUser, task

    from _common import locust_environment
    from novastress_locust.user import NovaUser

    waiting = [0]

    class Waiting(NovaUser):
        """Boots one server and waits for it (the cloud builds for an hour)."""

        @task
        def boot_and_wait(self) -> None:
            waiting[0] += 1
            self.boot_server()

    class Sleeping(HttpUser):
        """Locust's own user: one request on its session, then idle."""
        host = credentials["auth_url"]

        @task
        def request_and_sleep(self) -> None:
            self.client.get("/v3", name="identity GET /v3")
            waiting[0] += 1
            gevent.sleep(3600)

    user_class = Waiting if kind == "nova" else Sleeping
    environment, runner, state = locust_environment(credentials, [user_class], "--build-timeout", "600")

    def settle(count: int) -> float:
        deadline = time.monotonic() + 120 + count / 100
        while waiting[0] < count and time.monotonic() < deadline:
            gevent.sleep(0.2)
        gevent.sleep(2.0)          # the last users' requests answered, the waiter polled
        gc.collect()
        return rss_mb()
    runner.start(1, spawn_rate=1)  # imports, token, catalog, the waiter greenlet: not per user
    before = settle(1)
    runner.start(users + 1, spawn_rate=500)
    after = settle(users + 1)
    reached = waiting[0]
    runner.quit()
    return {"kind": kind, "users": users, "reached": reached - 1, "before": before, "after": after,
            "per_1000": (after - before) / users * 1000}


def child(mode: str, spec: dict) -> dict:
    process = subprocess.Popen([sys.executable, __file__, f"--{mode}", json.dumps(spec)],
                               stdout=subprocess.PIPE, text=True)
    pin(process.pid, LOADGEN_CORE)
    out, _ = process.communicate(timeout=900)
    lines = [line for line in out.splitlines() if line.startswith("result: ")]
    if not lines:
        raise RuntimeError(f"the {mode} child printed no result (exit {process.returncode})")
    return json.loads(lines[-1][len("result: "):])


def users_figure(users: int) -> float:
    from novastress_locust.fakecloud import EmbeddedCloud
    with EmbeddedCloud(faults="none", delay_scale=0.0, seed=7,
                       extra_args=["--delay", "build=3600:3600"]) as cloud:
        pin(cloud.process.pid, SERVER_CORE)
        nova = child("users-child", {"credentials": cloud.credentials(), "kind": "nova", "users": users})
        http = child("users-child", {"credentials": cloud.credentials(), "kind": "http", "users": users})
    for result in (nova, http):
        print(f"  {result['kind']:5s} users: {result['reached']}/{result['users']} waiting, RSS "
              f"{result['before']:.0f} -> {result['after']:.0f} MB = {result['per_1000']:.1f} MB per 1,000")
    ratio = nova["per_1000"] / http["per_1000"] if http["per_1000"] > 0 else float("nan")
    figure("worker RSS growth per 1,000 idle-waiting NovaUsers", f"<= {USERS_TARGET_MB:.0f} MB "
           f"(stretch {USERS_STRETCH_MB:.0f})", f"{nova['per_1000']:.1f} MB (HttpUser {http['per_1000']:.1f} MB)",
           ratio, nova["per_1000"] <= USERS_TARGET_MB and nova["reached"] == users,
           "ratio: vs idle HttpUsers")
    return ratio


# -- the embedded cloud ---------------------------------------------------------------------
def cloud_figure(live_servers: int) -> float:
    with bench_cloud(SERVER_CORE, seed=7) as bench:
        cloud, compute, headers = bench.cloud, bench.compute, bench.headers
        body = bench.server_body("bench-memory")
        bulk_create(compute + "/servers", headers, body, 10)     # every code path warm
        empty = rss_mb(cloud.process.pid)
        bulk_create(compute + "/servers", headers, body, live_servers - 10)
        time.sleep(1.0)
        full = rss_mb(cloud.process.pid)
    print(f"  embedded cloud: RSS {empty:.0f} MB with 10 servers, {full:.0f} MB with {live_servers} "
          f"({1024 * (full - empty) / max(1, live_servers - 10):.1f} KB per server)")
    figure(f"embedded cloud RSS, {live_servers} live servers", f"<= {CLOUD_TARGET_MB:.0f} MB",
           f"{full:.0f} MB (10 servers: {empty:.0f} MB)", full / empty, full <= CLOUD_TARGET_MB,
           "ratio: vs the same cloud with 10 servers")
    return full / empty


# -- the log watcher ------------------------------------------------------------------------
def watcher_child(grow_mb: int, step_mb: int) -> dict:
    """In a fresh process: grow one watched file to `grow_mb`, checking after every step."""
    from logwatch import HostWatcher, LocalTransport, Matcher, Target, WatchConfig

    root = Path(tempfile.mkdtemp(prefix="logwatch-memory-"))
    try:
        path = root / "nova-compute.log"
        block = LINE * (1024 * 1024 // len(LINE)) + ERROR_LINE     # ~1 MB with one error
        path.write_text(block)
        host = HostWatcher(Target("compute-1", "compute-1"), LocalTransport("compute-1"),
                           WatchConfig(logfiles=str(root / "*.log"), settle=0.0), Matcher.build())
        host.check()
        start = rss_mb()
        found, samples = 0, []
        data = block.encode()        # written 1 MB at a time: the writer's memory must not count
        with open(path, "ab") as handle:
            while path.stat().st_size < grow_mb * 1024 * 1024:
                for _ in range(step_mb):
                    handle.write(data)
                handle.flush()
                found += len(host.check())
                samples.append(rss_mb())
        size = path.stat().st_size / 1024 / 1024
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {"start": start, "end": samples[-1], "max": max(samples), "peak": rss_mb(field="VmHWM"),
            "size_mb": size, "found": found, "checks": len(samples)}


def watcher_figure(grow_mb: int, step_mb: int) -> float:
    result = child("watcher-child", {"grow_mb": grow_mb, "step_mb": step_mb})
    growth = result["peak"] - result["start"]
    print(f"  log watcher: file 1 -> {result['size_mb']:.0f} MB in {result['checks']} checks "
          f"({step_mb} MB each, {result['found']} errors found): RSS {result['start']:.0f} MB at 1 MB, "
          f"{result['end']:.0f} MB at the end, peak {result['peak']:.0f} MB")
    figure(f"log watcher RSS, watched file 1 MB -> {result['size_mb']:.0f} MB",
           f"flat (peak <= RSS at 1 MB + {WATCHER_FLAT_MB:.0f} MB)",
           f"peak {result['peak']:.0f} MB (at 1 MB: {result['start']:.0f} MB)",
           result["peak"] / result["start"], growth <= WATCHER_FLAT_MB,
           "ratio: peak vs the RSS at 1 MB")
    return result["peak"] / result["start"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--live-servers", type=int, default=10000)
    parser.add_argument("--grow-mb", type=int, default=1024)
    parser.add_argument("--step-mb", type=int, default=32, help="growth between two checks")
    parser.add_argument("--only", choices=("users", "cloud", "watcher"), action="append")
    parser.add_argument("--users-child", help=argparse.SUPPRESS)
    parser.add_argument("--watcher-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.users_child:
        import locust  # noqa: F401  (patches with gevent first)
        spec = json.loads(args.users_child)
        print("result: " + json.dumps(users_child(spec["credentials"], spec["kind"], spec["users"])), flush=True)
        os._exit(0)        # thousands of users waiting on an hour-long build: no graceful stop
    if args.watcher_child:
        spec = json.loads(args.watcher_child)
        print("result: " + json.dumps(watcher_child(spec["grow_mb"], spec["step_mb"])), flush=True)
        return 0
    only = set(args.only or ("users", "cloud", "watcher"))
    # the headline ratio is the first figure measured: users, else cloud, else watcher
    ratios = []
    if "users" in only:
        ratios.append(users_figure(args.users))
    if "cloud" in only:
        ratios.append(cloud_figure(args.live_servers))
    if "watcher" in only:
        ratios.append(watcher_figure(args.grow_mb, args.step_mb))
    print(f"ratio: {ratios[0]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
