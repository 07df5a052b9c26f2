"""Run every benchmark and write the results table (figure, target, measured, ratio, met?).

    .venv/bin/python bench/run_all.py            # full sizes, a few minutes; writes bench/RESULTS.md
    .venv/bin/python bench/run_all.py --quick    # small sizes, to see that everything runs
    .venv/bin/python bench/run_all.py --only memory --only concurrency --output /tmp/results.md

Each bench runs in its own process, one after the other (they pin themselves to the two
cores); its `figure:` lines make the table rows and its last `ratio:` line is checked.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RATIO = re.compile(r"^ratio: (\S+)$", re.M)


@dataclass
class Bench:
    name: str
    script: str
    full: list[str]
    quick: list[str]
    timeout: float = 900.0
    needs: str | None = None           # an executable the bench cannot run without


BENCHES = [
    Bench("client_overhead", "client_overhead.py", ["--calls", "1500", "--rounds", "3"],
          ["--calls", "100", "--rounds", "1"]),
    Bench("fakecloud_throughput", "fakecloud_throughput.py", ["--seconds", "4", "--live-servers", "10000"],
          ["--seconds", "0.5", "--live-servers", "500"]),
    Bench("waiter", "waiter.py", ["--users", "200", "--seconds", "15"], ["--users", "10", "--seconds", "3"]),
    Bench("timing", "timing.py", ["--loops", "20", "--seconds", "30"], ["--loops", "3", "--seconds", "4"]),
    Bench("concurrency", "concurrency.py", ["--seconds", "20"],
          ["--users", "60", "--seconds", "3", "--spawn-rate", "100"]),
    Bench("logwatch", "logwatch_latency.py", ["--size-mb", "100", "--checks", "10", "--samples", "15"],
          ["--size-mb", "2", "--checks", "2", "--samples", "3"], needs="sshd"),
    Bench("logwatch_scale", "logwatch_scale.py", ["--seconds", "20"],
          ["--hosts", "10", "--seconds", "3", "--initial-kb", "10", "--lines-per-second", "200"]),
    Bench("memory", "memory.py", ["--users", "1000", "--live-servers", "10000", "--grow-mb", "1024"],
          ["--users", "50", "--live-servers", "500", "--grow-mb", "32", "--step-mb", "8"]),
    # 10 seeds x 2 locustfiles x 60 s runs: about half an hour (a stuck run is cut after 4 min)
    Bench("detection", "detection.py", ["--seeds", "10", "--seconds", "60"], ["--quick"], timeout=5400.0),
]


@dataclass
class Outcome:
    bench: Bench
    returncode: int
    output: str
    seconds: float
    figures: list[dict] = field(default_factory=list)
    ratio: float | None = None


def run(bench: Bench, quick: bool) -> Outcome:
    if bench.needs and not _have(bench.needs):
        return Outcome(bench, -1, f"skipped: {bench.needs} is not installed", 0.0)
    started = time.monotonic()
    command = [sys.executable, str(BENCH / bench.script), *(bench.quick if quick else bench.full)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=bench.timeout, cwd=BENCH.parent)
        output, code = done.stdout + ("\n" + done.stderr if done.returncode else ""), done.returncode
    except subprocess.TimeoutExpired as expired:
        output, code = f"{expired.stdout or ''}\ntimed out after {bench.timeout:g} s", -9
        output = output if isinstance(output, str) else output.decode()
    outcome = Outcome(bench, code, output, time.monotonic() - started)
    for line in output.splitlines():
        if line.startswith("figure: "):
            outcome.figures.append(json.loads(line[len("figure: "):]))
    ratios = RATIO.findall(output)
    if ratios:
        try:
            outcome.ratio = float(ratios[-1])
        except ValueError:
            pass
    return outcome


def _have(executable: str) -> bool:
    paths = os.environ.get("PATH", "").split(os.pathsep) + ["/usr/sbin", "/usr/local/sbin"]
    return any(os.access(os.path.join(path, executable), os.X_OK) for path in paths)


def _cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value).replace("|", "\\|")


def table(outcomes: list[Outcome]) -> str:
    rows = ["| figure | target | measured | ratio | met? |", "| --- | --- | --- | --- | --- |"]
    for outcome in outcomes:
        if not outcome.figures:
            state = "skipped" if outcome.returncode == -1 else f"no figures (exit {outcome.returncode})"
            rows.append(f"| {outcome.bench.name} | – | {state} | {_cell(outcome.ratio)} | – |")
        for item in outcome.figures:
            rows.append(f"| {_cell(item['figure'])} | {_cell(item['target'])} | {_cell(item['measured'])} | "
                        f"{_cell(item['ratio'])} | {_cell(item['met'])} |")
    return "\n".join(rows)


def markdown(outcomes: list[Outcome], quick: bool) -> str:
    notes = [f"* **{item['figure']}** — {item['note']}" for outcome in outcomes
             for item in outcome.figures if item.get("note")]
    parts = [
        "# Benchmark results", "",
        f"Written by `bench/run_all.py{' --quick' if quick else ''}` on {time.strftime('%Y-%m-%d %H:%M')}, "
        f"{os.cpu_count()} cores (shared machine: CPU-seconds, not wall-clock, where it matters). "
        "Each bench prints its figures beside a baseline measured in the same run; *ratio* is "
        "ours / that baseline unless the note says otherwise.", "",
        table(outcomes), "",
        "Notes on the ratios:", "", *notes, "",
        "| bench | exit | seconds | ratio line |", "| --- | --- | --- | --- |",
        *[f"| `bench/{o.bench.script}` | {o.returncode} | {o.seconds:.0f} | {_cell(o.ratio)} |" for o in outcomes],
        "", "## Raw output", ""]
    for outcome in outcomes:
        parts += [f"<details><summary><code>bench/{outcome.bench.script} "
                  f"{' '.join(outcome.bench.quick if quick else outcome.bench.full)}</code></summary>", "",
                  "```", "\n".join(line for line in outcome.output.strip().splitlines()
                                   if not line.startswith("figure: ")), "```", "", "</details>", ""]
    return "\n".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds per bench)")
    parser.add_argument("--only", action="append", choices=[b.name for b in BENCHES])
    parser.add_argument("--output", type=Path, help="markdown file (default bench/RESULTS.md; "
                                                    "--quick: bench/RESULTS-quick.md)")
    args = parser.parse_args()
    output = args.output or BENCH / ("RESULTS-quick.md" if args.quick else "RESULTS.md")
    outcomes = []
    for bench in BENCHES:
        if args.only and bench.name not in args.only:
            continue
        print(f"running bench/{bench.script} ...", flush=True)
        outcome = run(bench, args.quick)
        print(f"  exit {outcome.returncode} in {outcome.seconds:.0f} s, ratio {outcome.ratio}", flush=True)
        outcomes.append(outcome)
    output.write_text(markdown(outcomes, args.quick))
    print(table(outcomes))
    print(f"written to {output}")
    missing = [o.bench.name for o in outcomes if o.returncode != -1 and (o.returncode != 0 or o.ratio is None)]
    if missing:
        print(f"no ratio from: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
