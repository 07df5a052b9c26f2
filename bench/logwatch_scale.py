"""Log watching at scale: 100 hosts x 5 files watched by one process's greenlets, while they grow.

    .venv/bin/python bench/logwatch_scale.py [--hosts 100] [--files 5] [--seconds 20] [--interval 1]

Transport: the local one (each host a directory of its own under a temp dir, read through
`LocalTransport`), because 100 sshd would measure sshd, not the watcher; `bench/logwatch_latency.py`
covers the SSH path on a real sshd. A writer process (core 0) appends oslo.log INFO lines to
every file (`--lines-per-second` in all) and, every `--error-every` seconds, one ERROR line
stamped with its write time to a random file. The watcher runs as the Locust master runs it
(gevent-patched threads: one greenlet per host, poll mode, pinned to core 1). Measured: CPU
share of a core (getrusage) and detection latency (write -> finding) p50/p95; the baseline,
same files and interval, is Tempest's way: `egrep 'ERROR|TRACE'` over every whole file.
"""
from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gevent  # noqa: E402
from _common import LOADGEN_CORE, SERVER_CORE, figure, percentile, pin  # noqa: E402

from logwatch import HostWatcher, LocalTransport, LogWatcher, Matcher, Target, WatchConfig  # noqa: E402

SERVICES = ("nova-api", "nova-compute", "nova-conductor", "nova-scheduler", "neutron-server")
INFO = ("{ts} 18814 INFO nova.compute.manager [None req-660e8d24-ff54-427e-9bd3-fd57bd3dcc60 "
        "1bb6da0075394feb97f778bd1c32c376 a1292b0ea6bc4c62bfc54f2cf84e7bb3 - - default default] "
        "[instance: 453c39e4-ae0e-4fcd-b50b-8cc5e725c677] Took 0.02 seconds to deallocate network.\n")
ERROR = "{ts} 18814 ERROR nova.compute.manager [None req-00000000-0000-4000-8000-{n:012d} - - - - - -] t={t:.6f}\n"
TARGET_SHARE = 0.10

WRITER = """
import random, sys, time
from datetime import datetime
paths, rate, error_every, seconds = {paths!r}, {rate!r}, {error_every!r}, {seconds!r}
info, error = {info!r}, {error!r}
handles = [open(p, "a", buffering=1) for p in paths]
rng = random.Random(5)
start = time.monotonic(); next_error = start + error_every; n = 0; written = 0
tick = 0.05
while time.monotonic() - start < seconds:
    now = time.monotonic()
    ts = datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    for _ in range(max(1, int(rate * tick))):
        rng.choice(handles).write(info.format(ts=ts))
    if now >= next_error:
        n += 1
        rng.choice(handles).write(error.format(ts=ts, n=n, t=time.time()))
        next_error += error_every
    time.sleep(max(0.0, tick - (time.monotonic() - now)))
print(n, flush=True)
"""


def cpu_self_and_children() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def make_files(root: Path, hosts: int, files: int, initial_kb: int) -> list[Path]:
    ts = "2026-11-28 05:41:32.753"
    block = INFO.format(ts=ts) * max(1, initial_kb * 1024 // len(INFO.format(ts=ts)))
    paths = []
    for host in range(hosts):
        directory = root / f"compute-{host:03d}"
        directory.mkdir(parents=True)
        for service in SERVICES[:files]:
            path = directory / f"{service}.log"
            path.write_text(block)
            paths.append(path)
    return paths


def watch(root: Path, hosts: int, seconds: float, interval: float) -> dict:
    """Our watcher over every host for `seconds`: CPU share and detection latencies."""
    matcher = Matcher.build()
    watchers = []
    for host in range(hosts):
        label = f"compute-{host:03d}"
        config = WatchConfig(logfiles=str(root / label / "*.log"), interval=interval)
        watchers.append(HostWatcher(Target(label, label), LocalTransport(label), config, matcher))
    watcher = LogWatcher(watchers, WatchConfig(logfiles="", interval=interval))
    delays: list[float] = []

    def on_finding(finding) -> None:
        message = finding.record.message
        if "t=" in message:
            delays.append(time.time() - float(message.rsplit("t=", 1)[1]))
    watcher.start(on_finding)
    gevent.sleep(interval + 1)          # every host listed once: offsets set
    delays.clear()
    cpu, wall = cpu_self_and_children(), time.monotonic()
    gevent.sleep(seconds)
    cpu, wall = cpu_self_and_children() - cpu, time.monotonic() - wall
    watcher.stop(final_check=False)
    return {"share": cpu / wall, "delays": delays}


def egrep(root: Path, hosts: int, seconds: float, interval: float) -> dict:
    """Tempest's check: every interval, egrep every whole file of every host."""
    cpu, wall = cpu_self_and_children(), time.monotonic()
    end = wall + seconds
    rounds = 0
    while time.monotonic() < end:
        started = time.monotonic()
        for host in range(hosts):
            files = sorted(str(p) for p in (root / f"compute-{host:03d}").glob("*.log"))
            subprocess.run(["grep", "-E", "ERROR|TRACE", *files], stdout=subprocess.DEVNULL, check=False)
        rounds += 1
        gevent.sleep(max(0.0, interval - (time.monotonic() - started)))
    cpu, wall = cpu_self_and_children() - cpu, time.monotonic() - wall
    return {"share": cpu / wall, "rounds": rounds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--files", type=int, default=5, choices=range(1, len(SERVICES) + 1))
    parser.add_argument("--seconds", type=float, default=20.0, help="measurement window per mode")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between checks")
    parser.add_argument("--initial-kb", type=int, default=200, help="size of every file at start")
    parser.add_argument("--lines-per-second", type=float, default=2000.0, help="INFO lines, all files")
    parser.add_argument("--error-every", type=float, default=0.1, help="seconds between ERROR lines")
    args = parser.parse_args()
    pin(os.getpid(), LOADGEN_CORE)
    root = Path(tempfile.mkdtemp(prefix="logwatch-scale-"))
    try:
        paths = make_files(root, args.hosts, args.files, args.initial_kb)
        total = args.interval + 1 + 2 * args.seconds + 10
        code = WRITER.format(paths=[str(p) for p in paths], rate=args.lines_per_second,
                             error_every=args.error_every, seconds=total, info=INFO, error=ERROR)
        writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        pin(writer.pid, SERVER_CORE)
        try:
            ours = watch(root, args.hosts, args.seconds, args.interval)
            grown = sum(p.stat().st_size for p in paths) / 1e6
            baseline = egrep(root, args.hosts, args.seconds, args.interval)
        finally:
            writer.kill()
            writer.wait()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    delays = ours["delays"]
    p50, p95 = percentile(delays, 0.5), percentile(delays, 0.95)
    print(f"{args.hosts} hosts x {args.files} files (local transport), {args.lines_per_second:g} lines/s "
          f"+ an ERROR every {args.error_every:g} s, check every {args.interval:g} s, {args.seconds:g} s "
          f"per mode; {grown:.0f} MB watched")
    print(f"  incremental watcher : {100 * ours['share']:5.1f} % of a core, detection p50 {p50:.2f} s, "
          f"p95 {p95:.2f} s ({len(delays)} errors found)")
    print(f"  egrep whole files   : {100 * baseline['share']:5.1f} % of a core ({baseline['rounds']} rounds)")
    ratio = ours["share"] / baseline["share"] if baseline["share"] else float("nan")
    figure(f"log watching, {args.hosts} hosts x {args.files} files (local transport): CPU",
           f"< {100 * TARGET_SHARE:.0f} % of a core", f"{100 * ours['share']:.1f} % (egrep "
           f"{100 * baseline['share']:.1f} %)", ratio, ours["share"] < TARGET_SHARE,
           "ratio: vs whole-file egrep every interval")
    figure(f"log watching, {args.hosts} hosts x {args.files} files: detection latency p95",
           f"<= interval + 1 s ({args.interval + 1:g} s)", f"{p95:.2f} s (p50 {p50:.2f} s, "
           f"{len(delays)} errors)", p95 / args.interval if delays else None,
           bool(delays) and p95 <= args.interval + 1, "ratio: vs the check interval")
    print(f"ratio: {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
