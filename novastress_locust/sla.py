"""Rally's SLA criteria as a Locust option: a verdict on the run that an operator can act on.

    locust -f locustfiles/create_destroy.py --headless -t 5m \\
        --sla failure_rate=1,max_avg_duration=20,max_avg_duration_per_atomic.boot_server=10,outliers=2

`--sla` takes comma-separated NAME=VALUE criteria (in locust.conf: `sla = failure_rate=1, ...`).
Durations are seconds; each criterion is judged per action (an `ACTION` row) unless it says
otherwise, with Rally's meanings:

* `failure_rate=P` — at most P % of the action's iterations failed;
* `max_seconds_per_iteration=S` — no iteration (failed ones too) took longer than S;
* `max_avg_duration=S` — the successful iterations took S on average at most;
* `max_avg_duration_per_atomic.NAME=S` — the atomic step NAME (an `ATOMIC` row: boot_server,
  delete_server...) took S on average at most, over the successful steps of every action;
* `outliers=N` — at most N successful iterations took longer than the mean plus
  `outliers.sigmas` (default 10) standard deviations, judged once the action has
  `outliers.min_iterations` (default 10) of them (Rally compares each iteration with those
  before it; here every one is compared with the whole run's mean, from Locust's histogram);
* `performance_degradation=P` — the slowest successful iteration took at most P % longer
  than the fastest;
* `max_log_errors=N` and `max_invariant_violations=N` — what only this tool sees, for the
  whole run: errors in the cloud's logs, invariants the cloud broke.

A criterion given replaces the zero tolerance of the run's exit code for what it measures: with
`failure_rate=5` a run in which 2 % of the actions failed exits 0. The exit code is 3 when an
SLA criterion failed and nothing else did (1 stays "an action failed, something leaked, the logs
held errors or an invariant broke beyond what --sla allows"). `--sla-abort` stops the run as
soon as a criterion fails (Rally's --abort-on-sla-failure); the criteria are evaluated every few
seconds while the run goes (the web UI's SLA tab) and once at its end (the summary's SLA table,
`--summary-json`'s "sla").
"""
from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

PER_ACTION = ("failure_rate", "max_seconds_per_iteration", "max_avg_duration", "outliers", "performance_degradation")
PER_RUN = ("max_log_errors", "max_invariant_violations")
PER_ATOMIC = "max_avg_duration_per_atomic"
COUNTS = ("outliers", "max_log_errors", "max_invariant_violations")   # whole numbers
OUTLIER_DEFAULTS = {"sigmas": 10.0, "min_iterations": 10}


@dataclass(frozen=True)
class Criterion:
    """One criterion: its name, its limit, and for a per-atomic one the atomic step."""

    name: str
    limit: float
    atomic: str = ""

    @property
    def label(self) -> str:
        return f"{self.name}.{self.atomic}" if self.atomic else self.name


@dataclass(frozen=True)
class Sla:
    """The criteria of a run (or of one scenario entry), and the outlier detector's settings."""

    criteria: tuple[Criterion, ...] = ()
    sigmas: float = OUTLIER_DEFAULTS["sigmas"]
    min_iterations: int = OUTLIER_DEFAULTS["min_iterations"]

    def __bool__(self) -> bool:
        return bool(self.criteria)

    def limits(self, name: str) -> bool:
        """Whether a criterion named `name` is given (it then replaces the zero tolerance)."""
        return any(criterion.name == name for criterion in self.criteria)

    def text(self) -> str:
        parts = [f"{c.label}={c.limit:g}" for c in self.criteria]
        if self.limits("outliers"):
            parts += [f"outliers.sigmas={self.sigmas:g}", f"outliers.min_iterations={self.min_iterations}"]
        return ",".join(parts)


def parse(text: Any) -> Sla:
    """`--sla` / a scenario entry's `sla:` (a string, or a mapping NAME: VALUE) -> Sla;
    argparse.ArgumentTypeError naming what is wrong and what would be right."""
    if isinstance(text, Sla):
        return text
    if isinstance(text, dict):
        pairs = [(str(key), value) for key, value in text.items()]
    else:
        pairs = []
        for item in str(text or "").replace("\n", ",").split(","):
            if not item.strip():
                continue
            key, equals, value = item.partition("=")
            if not equals:
                raise argparse.ArgumentTypeError(f"SLA criterion {item.strip()!r} has no value: write NAME=VALUE, "
                                                 f"e.g. failure_rate=1")
            pairs.append((key.strip(), value.strip()))
    criteria: list[Criterion] = []
    settings = dict(OUTLIER_DEFAULTS)
    for key, raw in pairs:
        name, _, detail = key.partition(".")
        number = _number(key, raw)
        if name == "outliers" and detail in settings:
            if detail == "min_iterations" and (number != int(number) or number < 1):
                raise argparse.ArgumentTypeError(f"SLA {key}={raw}: a whole number of iterations, at least 1")
            settings[detail] = int(number) if detail == "min_iterations" else number
            continue
        if name == PER_ATOMIC:
            if not detail:
                raise argparse.ArgumentTypeError(f"SLA {key}: name the atomic step, e.g. "
                                                 f"{PER_ATOMIC}.boot_server=10")
        elif name not in PER_ACTION + PER_RUN or detail:
            known = ", ".join(PER_ACTION + PER_RUN + (f"{PER_ATOMIC}.NAME", "outliers.sigmas",
                                                      "outliers.min_iterations"))
            raise argparse.ArgumentTypeError(f"unknown SLA criterion {key!r}; known: {known}")
        if name in COUNTS and number != int(number):
            raise argparse.ArgumentTypeError(f"SLA {key}={raw}: a whole number")
        if any(c.name == name and c.atomic == detail for c in criteria):
            raise argparse.ArgumentTypeError(f"SLA criterion {key} is given twice")
        criteria.append(Criterion(name, number, detail if name == PER_ATOMIC else ""))
    if settings["sigmas"] <= 0:
        raise argparse.ArgumentTypeError("SLA outliers.sigmas must be greater than zero")
    return Sla(tuple(criteria), float(settings["sigmas"]), int(settings["min_iterations"]))


def _number(key: str, raw: Any) -> float:
    try:
        number = float(raw)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"SLA {key}={raw}: not a number") from None
    if not math.isfinite(number) or number < 0:
        raise argparse.ArgumentTypeError(f"SLA {key}={raw}: a number of at least 0")
    return number


@dataclass
class Verdict:
    """One criterion judged on one action (or on the whole run / an atomic step)."""

    criterion: str
    subject: str          # the action, the atomic step, or "run"
    limit: str
    value: str
    success: bool
    detail: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def judge(sla: Sla, actions: dict[str, Any], successes: dict[tuple[str, str], Any], log_errors: int,
          violations: int, per_action: dict[str, Sla] | None = None) -> list[Verdict]:
    """Each criterion on what the run measured: `actions` name -> StatsEntry of every iteration
    (all workers), `successes` (name, "ACTION" or "ATOMIC") -> StatsEntry of the successful ones;
    `per_action` an action's own criteria (a scenario entry's), judged instead of the run's."""
    verdicts: list[Verdict] = []
    for action, entry in sorted(actions.items()):
        own = (per_action or {}).get(action) or sla
        ok = successes.get((action, "ACTION"))
        verdicts += [_judge_action(criterion, own, action, entry, ok) for criterion in own.criteria
                     if criterion.name in PER_ACTION]
    atomics = {c.atomic: c for one in [sla, *(per_action or {}).values()] for c in one.criteria
               if c.name == PER_ATOMIC}
    for name, criterion in sorted(atomics.items()):
        entry = successes.get((name, "ATOMIC"))
        verdict = partial(Verdict, criterion.label, name, f"<= {criterion.limit:g} s")
        if entry is None or not entry.num_requests:
            verdicts.append(verdict("no steps", True, "no successful step of that name"))
            continue
        average = entry.avg_response_time / 1000
        verdicts.append(verdict(f"{average:.3f} s", average <= criterion.limit, f"{entry.num_requests} steps"))
    for criterion in sla.criteria:
        if criterion.name in PER_RUN:
            seen = log_errors if criterion.name == "max_log_errors" else violations
            verdicts.append(Verdict(criterion.label, "run", f"<= {criterion.limit:g}", str(seen),
                                    seen <= criterion.limit))
    return verdicts


def _judge_action(criterion: Criterion, sla: Sla, action: str, entry: Any, ok: Any) -> Verdict:
    runs, limit = entry.num_requests, criterion.limit
    successful = ok.num_requests if ok is not None else 0
    unit = {"failure_rate": " %", "performance_degradation": " %", "max_avg_duration": " s",
            "max_seconds_per_iteration": " s"}.get(criterion.name, "")
    verdict = partial(Verdict, criterion.label, action, f"<= {limit:g}{unit}")
    if criterion.name == "failure_rate":
        rate = 100.0 * entry.num_failures / runs if runs else 0.0
        return verdict(f"{rate:.2f} %", rate <= limit, f"{entry.num_failures} of {runs} failed")
    if criterion.name == "max_seconds_per_iteration":
        longest = entry.max_response_time / 1000 if runs else 0.0
        return verdict(f"{longest:.3f} s", longest <= limit, f"the longest of {runs}")
    if not successful:
        return verdict("no successful iterations", True)
    if criterion.name == "max_avg_duration":
        average = ok.avg_response_time / 1000
        return verdict(f"{average:.3f} s", average <= limit, f"{successful} successful")
    if criterion.name == "performance_degradation":
        fastest, slowest = (ok.min_response_time or 0) / 1000, ok.max_response_time / 1000
        degradation = 100.0 * (slowest - fastest) / fastest if fastest > 0 else 0.0
        return verdict(f"{degradation:.1f} %", degradation <= limit, f"{fastest:.3f} s .. {slowest:.3f} s")
    # outliers
    if successful < sla.min_iterations:
        return verdict("not judged", True, f"{successful} successful iterations of the {sla.min_iterations} it needs")
    mean = ok.total_response_time / successful
    variance = sum(count * (ms - mean) ** 2 for ms, count in ok.response_times.items()) / successful
    threshold = mean + sla.sigmas * math.sqrt(variance)
    outliers = sum(count for ms, count in ok.response_times.items() if ms > threshold)
    return verdict(str(outliers), outliers <= limit,
                   f"slower than {threshold / 1000:.3f} s (mean + {sla.sigmas:g} sigmas)")


def table(verdicts: list[Verdict]) -> str:
    """Rally's SLA table: criterion, subject, limit, value, Passed/Failed."""
    rows = [("Criterion", "Action", "Limit", "Value", "Status")]
    rows += [(v.criterion, v.subject, v.limit, v.value, "Passed" if v.success else "FAILED") for v in verdicts]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["SLA:"] + ["  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
                        for row in rows]
    failed = sum(not v.success for v in verdicts)
    lines.append(f"SLA {'FAILED: ' + str(failed) + ' of ' + str(len(verdicts)) + ' criteria' if failed else 'passed'}")
    return "\n".join(lines)
