"""Which planted races a run finds, and how fast: `storm.py` against `create_destroy.py`.

    .venv/bin/python bench/detection.py [--seeds 10] [--seconds 60] [--users 6]
    .venv/bin/python bench/detection.py --quick          # 1 seed of 6 s, fast cloud delays

For each seed one embedded cloud per locustfile, every planted race armed at its catalogue
probability, one headless `locust` run with the log watcher on the cloud's log directory; both
locustfiles get the same users (default 6, the storm's own `threads`), the storm runs with its
default pool and ratios.
What the run reported — 5xx failures, LOG failures, INVARIANT violations — is matched
against the cloud's ground truth (`GET /fakecloud/faults`): a detection finds a fired race
when it carries the request id or the server id the record names. Per class: the fraction of
seeds in which a run found it and the median time from the start of the load to the first
detection. Last line `ratio: X` = classes create_destroy found / classes the storm found.
"""
from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, figure  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))

LOCUSTFILES = {"storm": "locustfiles/storm.py", "create_destroy": "locustfiles/create_destroy.py"}
STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})\] ")
REQUEST_ID = re.compile(r"req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
UUID = re.compile(r"(?<!req-)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
FAILED = re.compile(r" failed \[(req-[0-9a-f-]{36})\]: .* -> (\d{3}) ")
LOG_ERROR = re.compile(r"log error \S+?:(\S+): .*?(?:\[action \S+ by \S+, request (req-[0-9a-f-]{36})\])?"
                       r"(?: \(\d+ lines\))?$")
INVARIANT = re.compile(r"invariant violated: (\S+): (\S+): ")
# the planted races whose wrong state each invariant can see (the others name a server the
# ground truth names too; quota invariants name the project, which no fired record does)
INVARIANT_SEES = {
    "placement-allocations-leak": {"delete-during-build", "unshelve-delete-allocations"},
    "resource-provider-usage": {"delete-during-build", "unshelve-delete-allocations"},
    "server-not-deleted": {"delete-during-build"},
    "server-group-policy": {"group-policy-burst"},
    "server-group-host-count": {"scheduler-capacity-race", "group-policy-burst"},
    "quota-usage-mismatch": {"quota-usage-drift"},
    "quota-exceeded": {"quota-usage-drift", "quota-recheck-skipped"},
    "volume-attached-to-deleted-server": {"attach-during-delete"},
    "floating-ip-on-gone-port": {"floating-ip-delete-race"},
}

# the logger of the ERROR record each planted race writes: several races may share a request id
# (one storm round's action and its racing DELETE) and a log file, the logger tells them apart
LOGGER_OF = {
    "delete-during-build": "nova.compute.manager", "unshelve-delete-allocations": "nova.compute.manager",
    "attach-during-delete": "nova.compute.manager", "scheduler-capacity-race": "nova.conductor.manager",
    "quota-usage-drift": "nova.quota", "state-change-race": "nova.api.openstack.wsgi",
    "delete-preempts-action": "oslo_messaging.rpc.server",
}


@dataclass
class Detection:
    """One thing a run reported: a failed action, a logged error or an invariant violation."""

    kind: str                 # "failure", "LOG" or "INVARIANT"
    at: float                 # epoch seconds (the Locust log line's stamp)
    line: str
    request_ids: list[str] = field(default_factory=list)
    uuids: set[str] = field(default_factory=set)
    status: int | None = None
    log: str | None = None    # LOG: the file's name
    name: str | None = None   # INVARIANT: the invariant
    subject: str | None = None

    def finds(self, record: dict) -> bool:
        """Whether this detection is evidence of the fired race `record` (ground truth)."""
        ids = set(record.get("request_ids") or [])
        resource = record.get("resource_id")
        if self.at < record["time"] - 1.0:     # reported before the race happened: not about it
            return False
        if self.kind == "failure":
            # the failing request itself, or the action's id together with the server's id
            return bool(self.request_ids and self.request_ids[-1] in ids) or \
                (self.request_ids[0] in ids and resource in self.uuids)
        if self.kind == "LOG":
            logger = LOGGER_OF.get(record["fault"])
            if logger is not None and f": ERROR {logger}: " not in self.line:
                return False
            return self.log == record.get("log") and (bool(ids & set(self.request_ids)) or resource in self.uuids)
        seen_by = INVARIANT_SEES.get(self.name or "")
        if seen_by is not None and record["fault"] not in seen_by:
            return False
        if self.name in ("quota-usage-mismatch", "quota-exceeded"):
            return True
        if (self.name or "").startswith("server-group"):
            # a group's violation names the group: its burst's request ids name the boots
            return bool(ids & set(self.request_ids))
        # a server's violation: the very server (one action's id can touch several servers)
        return self.subject == resource


def _stamp(line: str) -> float | None:
    found = STAMP.match(line)
    if not found:
        return None
    return time.mktime(time.strptime(found.group(1), "%Y-%m-%d %H:%M:%S")) + int(found.group(2)) / 1000


def detections(output: str) -> tuple[float | None, list[Detection]]:
    """(start of the load, every detection) from a `locust` run's output (its log lines)."""
    started = None
    found: list[Detection] = []
    for line in output.splitlines():
        at = _stamp(line)
        if at is None:
            continue
        if started is None and "Ramping to" in line:
            started = at
        ids = REQUEST_ID.findall(line)
        uuids = set(UUID.findall(line))
        failed = FAILED.search(line)
        if failed and int(failed.group(2)) >= 500:
            found.append(Detection("failure", at, line, ids, uuids, status=int(failed.group(2))))
            continue
        logged = LOG_ERROR.search(line) if "/novastress.logwatch: log error " in line else None
        if logged:
            found.append(Detection("LOG", at, line, ids, uuids, log=Path(logged.group(1)).name))
            continue
        violated = INVARIANT.search(line)
        if violated and "/novastress: " in line:
            found.append(Detection("INVARIANT", at, line, ids, uuids, name=violated.group(1),
                                   subject=violated.group(2)))
    return started, found


def first_detections(started: float, found: list[Detection], fired: list[dict]) -> dict[str, tuple[float, Detection]]:
    """Per fired class: (seconds from the start of the load to its first detection, that detection)."""
    first: dict[str, tuple[float, Detection]] = {}
    for detection in sorted(found, key=lambda d: d.at):
        for record in fired:
            fault = record["fault"]
            if fault not in first and detection.finds(record):
                first[fault] = (detection.at - started, detection)
    return first


# -- one run ---------------------------------------------------------------------------------
@dataclass
class RunResult:
    locustfile: str
    seed: int
    fired: dict[str, int]                      # class -> times it fired
    found: dict[str, float]                    # class -> seconds to first detection
    returncode: int


def run_once(name: str, seed: int, seconds: float, users: int, scale: float, workdir: Path) -> RunResult:
    import requests
    from locust_runs import FAST, clean_env, cli_credentials, run_locust

    from novastress_locust.fakecloud import EmbeddedCloud
    log_dir = workdir / f"{name}-{seed}"
    with EmbeddedCloud(log_dir=log_dir, faults="all", seed=seed, delay_scale=scale) as cloud:
        admin = cloud.credentials(admin=True)
        args = ["-f", LOCUSTFILES[name], *FAST, "-t", f"{seconds:g}s", "-u", str(users), "-r", str(users),
                *cli_credentials(cloud), f"--os-admin-username={admin['username']}",
                f"--os-admin-password={admin['password']}", f"--os-admin-project-name={admin['project_name']}",
                "--target-logfiles", f"{log_dir}/*.log", "--log-discovery", "none", "--log-check-interval", "0.5",
                "--build-timeout", "60", "--delete-timeout", "60", "--request-timeout", "30",
                # the invariant bounds and the racing deletes follow the cloud's clock
                "--invariant-delete-timeout", f"{max(3.0, 20 * scale):g}",
                "--invariant-allocation-timeout", f"{max(2.0, 15 * scale):g}",
                "--invariant-check-interval", "1", "--invariant-settle-timeout", f"{max(10.0, 30 * scale):g}",
                "--invariant-task-state-timeout", f"{max(10.0, 60 * scale):g}",
                "--storm-delete-delay-max", f"{2 * scale:g}", "--quota-step", "0"]
        try:
            run = run_locust(args, env=clean_env(), timeout=seconds + 180)
            output, returncode = run.output, run.returncode
        except subprocess.TimeoutExpired as expired:   # a stuck run still counts what it reported
            output = "".join(part.decode(errors="replace") if isinstance(part, bytes) else part or ""
                             for part in (expired.stdout, expired.stderr))
            returncode = -9
        token = cloud.session(admin=True).get_token()
        fired = requests.get(f"{cloud.base_url}/fakecloud/faults", headers={"X-Auth-Token": token},
                             timeout=30).json()["fired"]
    started, found = detections(output)
    counts: dict[str, int] = {}
    for record in fired:
        counts[record["fault"]] = counts.get(record["fault"], 0) + 1
    first = first_detections(started, found, fired) if started is not None else {}
    return RunResult(name, seed, counts, {fault: at for fault, (at, _) in first.items()}, returncode)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds (runs per locustfile; default 10)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each run (default 60)")
    parser.add_argument("--users", type=int, default=6, help="users of each run (default 6)")
    parser.add_argument("--delay-scale", type=float, default=1.0, help="the cloud's transition delays")
    parser.add_argument("--quick", action="store_true", help="few short runs on fast cloud delays")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.seconds, args.delay_scale = min(args.seeds, 1), min(args.seconds, 6.0), 0.1
    from novastress_locust.fakecloud.faults import CATALOGUE

    results: dict[str, list[RunResult]] = {name: [] for name in LOCUSTFILES}
    with TemporaryDirectory(prefix="novastress-detection-") as tmp:
        for seed in range(1, args.seeds + 1):
            for name in LOCUSTFILES:
                result = run_once(name, seed, args.seconds, args.users, args.delay_scale, Path(tmp))
                results[name].append(result)
                print(f"seed {seed:2d} {name:14s} exit {result.returncode}: fired "
                      f"{sum(result.fired.values())} in {len(result.fired)} classes, found "
                      f"{', '.join(sorted(result.found)) or 'none'}", flush=True)

    print(f"\n{args.seeds} seed(s), {args.seconds:g} s runs, {args.users} users, delay scale {args.delay_scale:g}")
    print(f"{'planted class':30s} {'storm found':>12s} {'median s':>9s}   {'create_destroy':>14s} {'median s':>9s}")
    found_by = {name: set() for name in LOCUSTFILES}
    for fault in CATALOGUE:
        cells = []
        for name in LOCUSTFILES:
            runs = results[name]
            times = [r.found[fault] for r in runs if fault in r.found]
            fired = sum(1 for r in runs if fault in r.fired)
            if times:
                found_by[name].add(fault)
            median = f"{statistics.median(times):.1f}" if times else "-"
            cells.append(f"{len(times)}/{len(runs)} ({fired} fired)".rjust(14) + f" {median:>9s}")
        print(f"{fault:30s} {cells[0]}   {cells[1]}")
    storm, baseline = len(found_by["storm"]), len(found_by["create_destroy"])
    for name in LOCUSTFILES:
        per_run = statistics.mean(len(r.found) for r in results[name]) if results[name] else 0.0
        every = sum(1 for r in results[name] if len(r.found) == len(CATALOGUE))
        print(f"{name}: {len(found_by[name])} classes found in some run, {per_run:.2f} per run on average, "
              f"all {len(CATALOGUE)} in {every} of {len(results[name])} runs")
    ratio = baseline / storm if storm else 0.0
    figure(f"planted race classes found, create_destroy / storm ({args.seeds} seed(s) x {args.seconds:g} s)",
           "storm finds more", f"{baseline} / {storm} of {len(CATALOGUE)}", ratio, storm > baseline,
           "classes found in at least one seed; per-class fractions and median times in the raw output")
    print(f"ratio: {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
