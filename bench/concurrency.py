"""Concurrent server lifecycles one worker process sustains, its CPU and status polls per lifecycle.

    .venv/bin/python bench/concurrency.py [--users 2000] [--seconds 30] [--delay-scale 0.2]

One embedded cloud (pinned to core 0, short state delays: build 0.1-0.3 s, delete 0.04-0.12 s
at the default scale) and, one after the other, two worker processes pinned to core 1, each a
Locust local runner whose NovaUsers loop `server_create_destroy` (boot, wait ACTIVE, delete,
wait gone): the baseline with the per-server waiter (one GET per waiting server per interval,
`--users / 10` users, so the cloud is not the limit), then `--users` users with the batched
waiter, once per `--transport` (plain requests, then geventhttpclient under keystoneauth). Measured after every user has spawned, over `--seconds`: lifecycles completed,
failures, the mean lifecycle time, concurrent lifecycles by Little's law (throughput x mean
time), worker CPU seconds (/proc) per lifecycle and status polls per lifecycle.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import LOADGEN_CORE, SERVER_CORE, cpu_seconds, figure, pin  # noqa: E402

TARGET_CONCURRENCY = 2000


def worker(credentials: dict, kind: str, users: int, seconds: float, interval: float,
           spawn_rate: float, cloud_pid: int, transport: str = "requests") -> dict:
    """Run in the worker process: spawn, let it settle, measure one window, report."""
    import resource

    import gevent
    import locust  # noqa: F401  (patches with gevent first)

    from _common import locust_environment
    from novastress_locust.actions.servers import server_create_destroy
    from novastress_locust.user import NovaUser

    inflight = [0]

    gaps: list[float] = []      # a user's time between two lifecycles (Locust's loop, the hub)

    def lifecycle(user: NovaUser) -> None:
        inflight[0] += 1
        started = time.monotonic()
        ended = user.__dict__.get("lifecycle_ended")
        if ended is not None:
            gaps.append(started - ended)
        try:
            server_create_destroy(user)
        finally:
            inflight[0] -= 1
            user.lifecycle_ended = time.monotonic()
    lifecycle.__name__ = server_create_destroy.__name__

    class Lifecycle(NovaUser):
        waiter_kind = kind
        tasks = [lifecycle]

    environment, runner, state = locust_environment(
        credentials, [Lifecycle], "--status-poll-interval", str(interval), "--prefix", "bench",
        "--transport", transport)
    spawn_started = time.monotonic()
    runner.start(users, spawn_rate=spawn_rate)
    deadline = spawn_started + users / spawn_rate + 120
    while runner.user_count < users and time.monotonic() < deadline:
        gevent.sleep(0.2)
    spawned = time.monotonic() - spawn_started
    gevent.sleep(max(3 * interval, 3.0))     # every user inside its first lifecycles

    def snapshot() -> dict:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        waiter = next(iter(state.waiters.values()))
        action = environment.stats.get("server_create_destroy", "ACTION")
        return {"cpu": usage.ru_utime + usage.ru_stime, "wall": time.monotonic(),
                "cloud_cpu": cpu_seconds(cloud_pid),
                "polls": waiter.polls, "waits": waiter.waits, "lifecycles": action.num_requests,
                "failures": action.num_failures, "time_ms": action.total_response_time}
    before = snapshot()
    gaps.clear()
    print("measuring", flush=True)       # the parent may attach a profiler now
    samples = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        samples.append(inflight[0])
        gevent.sleep(0.1)
    after = snapshot()
    delta = {key: after[key] - before[key] for key in before}
    runner.quit()        # users are killed mid-action; the cloud is thrown away after the bench
    lifecycles = max(delta["lifecycles"], 1)
    waited = max(delta["waits"] / 2, 1)
    mean_s = delta["time_ms"] / lifecycles / 1000
    return {"kind": kind, "transport": transport, "users": runner.target_user_count or users, "spawn_s": spawned,
            "window_s": delta["wall"], "lifecycles": delta["lifecycles"], "failures": delta["failures"],
            "mean_s": mean_s, "rate": delta["lifecycles"] / delta["wall"],
            "concurrency": sum(samples) / max(1, len(samples)), "little": delta["lifecycles"] / delta["wall"] * mean_s,
            "cloud_share": delta["cloud_cpu"] / delta["wall"],
            "gap_ms": 1000 * sum(gaps) / max(1, len(gaps)),
            "cpu_share": delta["cpu"] / delta["wall"], "cpu_ms": 1000 * delta["cpu"] / lifecycles,
            "polls": delta["polls"] / waited}


def run_phase(cloud, kind: str, users: int, args, transport: str = "requests") -> dict:
    spec = json.dumps({"credentials": cloud.credentials(), "kind": kind, "transport": transport,
                       "users": users, "seconds": args.seconds,
                       "interval": args.interval, "spawn_rate": args.spawn_rate, "cloud_pid": cloud.process.pid})
    child = subprocess.Popen([sys.executable, __file__, "--worker", spec], stdout=subprocess.PIPE, text=True)
    pin(child.pid, LOADGEN_CORE)
    profilers = []
    lines = []
    for line in child.stdout:          # ends when the child exits
        lines.append(line)
        if line.strip() == "measuring" and args.profile and kind == "batched":
            profilers = [profile(pid, Path(args.profile) / f"{name}-{transport}.txt", args.seconds)
                         for name, pid in (("worker", child.pid), ("cloud", cloud.process.pid))]
    child.wait(timeout=60)
    for profiler in profilers:
        profiler.wait(timeout=60)
    lines = [line for line in lines if line.startswith("phase: ")]
    if not lines:
        raise RuntimeError(f"the {kind} worker printed no result (exit {child.returncode})")
    return json.loads(lines[-1][len("phase: "):])


def profile(pid: int, out: Path, seconds: float) -> subprocess.Popen:
    """py-spy (installed separately: pip install py-spy) on a process for the window, collapsed stacks."""
    out.parent.mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen([str(spy), "record", "--pid", str(pid), "--duration", str(int(seconds)),
                             "--rate", "100", "--format", "raw", "--output", str(out), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=TARGET_CONCURRENCY, help="batched-waiter users")
    parser.add_argument("--baseline-users", type=int, default=None, help="per-server users (default users/10)")
    parser.add_argument("--seconds", type=float, default=30.0, help="measurement window")
    parser.add_argument("--interval", type=float, default=1.0, help="status poll interval")
    parser.add_argument("--delay-scale", type=float, default=0.2)
    parser.add_argument("--spawn-rate", type=float, default=500.0)
    parser.add_argument("--profile", metavar="DIR", help="py-spy the batched worker and the cloud "
                        "during the window; collapsed stacks to DIR/worker.txt, DIR/cloud.txt")
    parser.add_argument("--transports", nargs="+", default=["requests", "fast"], choices=("requests", "fast"),
                        help="batched-waiter phases, one per transport; the last one makes the figures")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        spec = json.loads(args.worker)
        result = worker(spec["credentials"], spec["kind"], spec["users"], spec["seconds"], spec["interval"],
                        spec["spawn_rate"], spec["cloud_pid"], spec.get("transport", "requests"))
        print("phase: " + json.dumps(result), flush=True)
        return 0

    from novastress_locust.fakecloud import EmbeddedCloud
    baseline_users = args.baseline_users or max(10, args.users // 10)
    with EmbeddedCloud(faults="none", delay_scale=args.delay_scale, seed=7) as cloud:
        pin(cloud.process.pid, SERVER_CORE)
        results = [run_phase(cloud, "per-server", baseline_users, args, args.transports[-1]),
                   *(run_phase(cloud, "batched", args.users, args, transport) for transport in args.transports)]
    print(f"state delays x{args.delay_scale:g}, poll interval {args.interval:g} s, window {args.seconds:g} s, "
          f"cloud on core {SERVER_CORE}, worker on core {LOADGEN_CORE}")
    print(f"{'waiter':<12}{'transport':<10}{'users':>7}{'lifecycles':>12}{'failed':>8}{'mean s':>8}{'per s':>8}"
          f"{'concurrent':>12}{'CPU share':>11}{'CPU ms/lc':>11}{'polls/lc':>10}{'cloud CPU':>11}{'gap ms':>8}")
    for r in results:
        print(f"{r['kind']:<12}{r['transport']:<10}{r['users']:>7}{r['lifecycles']:>12}{r['failures']:>8}{r['mean_s']:>8.2f}"
              f"{r['rate']:>8.1f}{r['concurrency']:>12.0f}{r['cpu_share']:>11.2f}{r['cpu_ms']:>11.2f}"
              f"{r['polls']:>10.3f}{r['cloud_share']:>11.2f}{r['gap_ms']:>8.1f}")
    per_server, batched = results[0], results[-1]
    others = "; ".join(f"--transport {r['transport']}: {r['concurrency']:.0f}, {r['failures']} failed, "
                       f"{100 * r['cpu_share']:.0f} % of a core, {r['cpu_ms']:.2f} ms/lifecycle"
                       for r in results[1:-1])
    sustained = batched["failures"] == 0 and batched["cpu_share"] < 0.95
    figure("concurrent server lifecycles, one worker process (one core)", f">= {TARGET_CONCURRENCY}",
           f"{batched['concurrency']:.0f} ({batched['users']} users, --transport {batched['transport']}, "
           f"{batched['failures']} failed, worker at {100 * batched['cpu_share']:.0f} % of a core"
           f"{'; ' + others if others else ''})",
           batched["concurrency"] / TARGET_CONCURRENCY,
           sustained and batched["concurrency"] >= TARGET_CONCURRENCY * 0.95,
           "ratio: vs the target; concurrency = users inside a lifecycle, sampled every 0.1 s; met at "
           ">= 95 % of it (2,000 users can never all be inside one at every sample). With --transport "
           "requests the worker core is the limit (~2.5 ms of worker CPU per lifecycle, most of it "
           "keystoneauth + requests per API call), so users queue in the waiter's wake-up bursts; "
           "--transport fast (geventhttpclient under keystoneauth) cuts that to ~1.7 ms and leaves "
           "the core half idle. What is left of the gap between lifecycles is the wake-up burst "
           "itself, and the hottest worker path is now JSON-decoding the batched changes-since list "
           "(~1/3 of worker CPU: every list repeats ~3 s of changes, SINCE_MARGIN)")
    compared = [f"{r['transport']} {r['cpu_ms']:.2f} ms" for r in results[1:-1]]
    compared.append(f"per-server waiter {per_server['cpu_ms']:.2f} ms")
    figure("worker CPU per lifecycle, batched waiter", "(report)",
           f"{batched['cpu_ms']:.2f} ms with --transport {batched['transport']} ({'; '.join(compared)})",
           batched["cpu_ms"] / per_server["cpu_ms"], None, "ratio: vs the per-server waiter")
    ratio = batched["polls"] / per_server["polls"]
    figure("status polls per lifecycle, batched waiter at full concurrency", "<= 0.1x per-server",
           f"{batched['polls']:.3f} (per-server {per_server['polls']:.3f})", ratio, ratio <= 0.1)
    print(f"ratio: {ratio:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
