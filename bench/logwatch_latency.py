"""Log watching cost and speed over a real loopback sshd, against Tempest's whole-file egrep.

    python bench/logwatch_latency.py                 # 100 MB log, 20 checks, 20 latency samples per mode
    python bench/logwatch_latency.py --size-mb 10 --checks 5 --samples 10

Per check, with one new line appended to a 100 MB log: bytes received and CPU
(this process + the sshd side) of an incremental check vs `egrep "ERROR|TRACE"`
over the whole file on the same SSH connection; then detection latency (write ->
finding) p50/p95 in poll and follow modes. Prints numbers and ratios, no pass/fail.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "bench"))

from logwatch import LogWatcher, SSHSettings, WatchConfig, parse_hosts  # noqa: E402
from _common import figure, percentile, tree_cpu  # noqa: E402
from tests import sshd as sshd_helper  # noqa: E402

TS = "2026-11-28 05:41:32.753"
INFO = (f"{TS} 18814 INFO nova.compute.manager [None req-660e8d24-ff54-427e-9bd3-fd57bd3dcc60 "
        "1bb6da0075394feb97f778bd1c32c376 a1292b0ea6bc4c62bfc54f2cf84e7bb3 - - default default] "
        "[instance: 453c39e4-ae0e-4fcd-b50b-8cc5e725c677] Took 0.02 seconds to deallocate network.\n")


def error_line(n: int) -> str:
    return (f"{TS} 18814 ERROR nova.compute.manager [None req-00000000-0000-4000-8000-{n:012d} "
            f"- - - - - -] bench error {n}\n")


def append(path: Path, text: str) -> None:
    with open(path, "a") as handle:
        handle.write(text)


def cost(watcher: LogWatcher, log: Path, server, checks: int) -> dict:
    host = watcher.hosts[0]
    transport = host.transport
    watcher.check()
    rows = {"incremental": [], "egrep": []}
    for n in range(checks):
        line = error_line(n)
        append(log, line)
        before = (transport.bytes_in, time.process_time(), tree_cpu(server.process.pid))
        found = watcher.check()
        after = (transport.bytes_in, time.process_time(), tree_cpu(server.process.pid))
        assert len(found) == 1, found
        rows["incremental"].append((after[0] - before[0], after[1] - before[1] + after[2] - before[2], len(line)))
        before = (transport.bytes_in, time.process_time(), tree_cpu(server.process.pid))
        output = transport.run(f"egrep 'ERROR|TRACE' {log}")
        after = (transport.bytes_in, time.process_time(), tree_cpu(server.process.pid))
        assert output.count(b"\n") == n + 1
        rows["egrep"].append((after[0] - before[0], after[1] - before[1] + after[2] - before[2], len(line)))
    print(f"\nper check, one new {len(error_line(0))}-byte line, {checks} checks:")
    print(f"{'':14}{'bytes mean':>12}{'bytes max':>11}{'over new':>10}{'CPU ms mean':>13}")
    for name, values in rows.items():
        sizes = [v[0] for v in values]
        over = max(v[0] - v[2] for v in values)
        print(f"{name:14}{statistics.mean(sizes):>12.0f}{max(sizes):>11}{over:>10}"
              f"{1000 * statistics.mean(v[1] for v in values):>13.1f}")
    inc, egrep = rows["incremental"], rows["egrep"]
    print(f"egrep / incremental: bytes x{statistics.mean(v[0] for v in egrep) / statistics.mean(v[0] for v in inc):.1f}, "
          f"CPU x{statistics.mean(v[1] for v in egrep) / max(1e-9, statistics.mean(v[1] for v in inc)):.1f}; "
          f"target: incremental bytes <= new bytes + 1024 "
          f"({'met' if max(v[0] - v[2] for v in inc) <= 1024 else 'NOT met'})")
    return rows


def latency(build, log: Path, samples: int, label: str) -> list[float]:
    watcher = build()
    written: dict[str, float] = {}
    delays: list[float] = []
    done = threading.Event()

    def on_finding(finding) -> None:
        key = finding.record.message
        if key in written:
            delays.append(time.monotonic() - written.pop(key))
            if len(delays) >= samples:
                done.set()
    watcher.start(on_finding)
    deadline = time.monotonic() + 30
    while not all(h.ready for h in watcher.hosts) and time.monotonic() < deadline:
        time.sleep(0.01)
    rng = random.Random(1)
    for n in range(samples):
        time.sleep(rng.uniform(0.1, 0.6))
        line = error_line(10_000 + n)
        written[line.split("] ", 1)[1].strip()] = time.monotonic()
        append(log, line)
    done.wait(60)
    watcher.stop(final_check=False)
    print(f"{label:28} p50 {percentile(delays, 0.5):.3f} s   p95 {percentile(delays, 0.95):.3f} s   "
          f"({len(delays)}/{samples} found)")
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--checks", type=int, default=20)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--interval", type=float, default=1.0, help="poll mode check interval")
    args = parser.parse_args()
    if not sshd_helper.available():
        sys.exit("bench/logwatch_latency.py needs OpenSSH's sshd (apt-get install openssh-server)")
    work = Path(tempfile.mkdtemp(prefix="logwatch-bench-"))
    log = work / "logs" / "nova-compute.log"
    log.parent.mkdir()
    block = INFO * (1024 * 1024 // len(INFO))
    with open(log, "w") as handle:
        for _ in range(args.size_mb):
            handle.write(block)
    key = sshd_helper.make_key(work / "id_ed25519")
    server = sshd_helper.start_sshd(work / "sshd", [key])
    try:
        known = sshd_helper.write_known_hosts(work / "known_hosts", [server])
        ssh = SSHSettings(key_filename=str(key), known_hosts=str(known), ssh_config=None, allow_agent=False)
        glob = str(log.parent / "*.log")
        print(f"log {log.stat().st_size / 1e6:.0f} MB on sshd {server.target}")

        def build(**config):
            return LogWatcher.build(WatchConfig(logfiles=glob, **config), parse_hosts(server.target), ssh=ssh)
        poll_watcher = build(settle=0.2)
        try:
            rows = cost(poll_watcher, log, server, args.checks)
        finally:
            poll_watcher.close()
        print("\ndetection latency (write -> finding):")
        latency(lambda: build(interval=args.interval), log, args.samples, f"poll, every {args.interval:g} s")
        follow = latency(lambda: build(follow=True), log, args.samples, "follow (streamed)")
        print(f"target: follow p95 <= 1 s ({'met' if follow and percentile(follow, 0.95) <= 1 else 'NOT met'})")
        inc, egrep = rows["incremental"], rows["egrep"]
        inc_cpu, egrep_cpu = (statistics.mean(v[1] for v in inc), statistics.mean(v[1] for v in egrep))
        over = max(v[0] - v[2] for v in inc)
        figure(f"log check over SSH, {args.size_mb} MB log: bytes per check", "<= new bytes + 1024",
               f"{statistics.mean(v[0] for v in inc):.0f} B (egrep {statistics.mean(v[0] for v in egrep):.0f} B)",
               statistics.mean(v[0] for v in inc) / statistics.mean(v[0] for v in egrep), over <= 1024,
               "ratio: vs egrep over the whole file on the same connection")
        p95 = percentile(follow, 0.95) if follow else float("nan")
        figure("log detection latency over SSH, follow mode p95", "<= 1 s", f"{p95:.2f} s",
               p95, bool(follow) and p95 <= 1, "ratio: vs the 1 s target")
        print(f"ratio: {inc_cpu / max(1e-9, egrep_cpu):.4f}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
