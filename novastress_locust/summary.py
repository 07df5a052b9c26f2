"""Tempest's end-of-run summary, and the exit code that tells the truth.

    Statistics (per process):
    ServerCreateDestroy-1 (server_create_destroy): Run 12 actions (0 failed)
    Summary:
    Run 96 actions (1 failed)
    volume_create_delete backed off 12 times (same failure 3+ times in a row)

Past --summary-max-users per-user lines (300 users, a distributed run of thousands), the
statistics are grouped per worker and user class, the users that failed named:

    3f2a1b0c/ServerCreateDestroy x150 (server_create_destroy): Run 1200 actions (2 failed); per user
      min 6 / median 8 / max 9; failed: 3f2a1b0c/ServerCreateDestroy-17, 3f2a1b0c/ServerCreateDestroy-88
"""
from __future__ import annotations

import statistics
from typing import Any

from .options import BACKOFF_AFTER
from .sla import Verdict, table

SLA_FAILED = 3   # the exit code of a run in which only --sla's criteria failed


def collect(state) -> dict[str, dict[str, list[int]]]:
    """user -> action -> [runs, failed], this process's users and every worker's."""
    tally: dict[str, dict[str, list[int]]] = {user: dict(actions) for user, actions in state.tally.items()}
    for client_id, worker_tally in state.worker_tallies.items():
        tag = client_id.rsplit("_", 1)[-1][:8]
        for user, actions in worker_tally.items():
            tally[f"{tag}/{user}"] = {action: list(counts) for action, counts in actions.items()}
    return tally


def errors_of(environment, method: str) -> list:
    """Locust's error rows of one request type (INVARIANT, LOG): any worker's, the stats hold them all."""
    runner = environment.runner
    return [error for error in (runner.stats.errors.values() if runner is not None else []) if error.method == method]


def _user_order(name: str) -> tuple[str, int]:
    base, _, number = name.rpartition("-")
    return (base, int(number)) if number.isdigit() else (name, 0)


def render(state, tolerated: frozenset[str] = frozenset(), verdicts: list[Verdict] | None = None,
           findings: list[str] = ()) -> tuple[str, bool]:
    """The summary text and whether the run failed (a failed action, a leaked resource, what the
    sweep could not check, a fault whose command failed or whose service did not come back; failed actions and violated invariants not when an SLA criterion in
    `tolerated`, failure_rate or max_invariant_violations, sets how many may be); `verdicts`:
    the SLA's, printed as Rally's SLA table; `findings`: the lines of findings.py, the
    occurrences grouped (5xx, log records, invariants), which say nothing of pass or fail."""
    tally = collect(state)
    lines = ["Statistics (per process):"]
    rows = [(user, action, runs, failed) for user in sorted(tally, key=_user_order)
            for action, (runs, failed) in sorted(tally[user].items())]
    total_runs = sum(row[2] for row in rows)
    total_failed = sum(row[3] for row in rows)
    most = getattr(state.environment.parsed_options, "summary_max_users", 0) or 0
    if most and len(rows) > most:
        lines += _grouped(rows)
    else:
        lines += [f"{user} ({action}): Run {runs} actions ({failed} failed)" for user, action, runs, failed in rows]
    lines += ["Summary:", f"Run {total_runs} actions ({total_failed} failed)"]
    lines += [f"{action} backed off {times} times ("
              f"{'each failed setup retried later' if action == 'setup' else f'same failure {BACKOFF_AFTER}+ times in a row'})"
              for action, times in sorted(state.all_backoffs().items())]
    if state.interrupted:
        lines.append(f"Interrupted {state.interrupted} actions at stop (not counted; their "
                     f"resources were deleted)")
    if state.swept:
        lines.append(f"Swept {len(state.swept)} resources named {state.prefix}-{state.run_id}-* "
                     f"that no user had deleted: {', '.join(state.swept[:5])}")
    for leak in state.leaks:
        if leak.resource_id:
            lines.append(f"LEAKED {leak.kind} {leak.name} ({leak.resource_id}): {leak.error}")
        else:
            # the sweep could not look (a listing failed, or it could not run): nothing is known
            # to be left, nor known not to be
            lines.append(f"NOT CHECKED {leak.kind} {leak.name}: {leak.error}; novastress-cleanup "
                         f"--run-id {state.run_id} looks again")
    # what the log watch covered: a run whose logs were never read is not a clean run
    watch_lines, unwatched = state.log_watch.summary_lines() if state.log_watch is not None else ([], False)
    lines += watch_lines
    unwatched = unwatched and getattr(state.environment.parsed_options, "log_require_all_hosts", False)
    if unwatched:
        lines.append("A watched host's logs were not checked (--log-require-all-hosts): the run fails")
    # the fault schedule (faultplan.py): each fault, its recovery, what the end could not restore
    schedule = state.faults
    faulted = False
    if schedule is not None:
        lines += [record.line() for record in schedule.records]
        lines += [f"FAULT NOT RESTORED: {line}" for line in schedule.unrestored]
        faulted = any(record.failed for record in schedule.records) or bool(schedule.unrestored)
    # INVARIANT failures (invariants.py) may come from any worker: the stats hold them all
    violated = errors_of(state.environment, "INVARIANT")
    if violated:
        # the findings below group them by class; each one, with its subject and requests, is in
        # the stats' error table and --summary-json
        lines.append(f"Invariant violations: {sum(error.occurrences for error in violated)} (each in the "
                     f"error table and --summary-json; grouped below)")
    lines += findings
    if verdicts is not None:
        lines.append(table(verdicts))
    if "failure_rate" in tolerated:
        total_failed = 0                   # how many may fail is the SLA's to judge
    if "max_invariant_violations" in tolerated:
        violated = []
    return "\n".join(lines), bool(total_failed or state.leaks or violated or unwatched or faulted)


def _grouped(rows: list[tuple[str, str, int, int]], named: int = 10) -> list[str]:
    """One line per worker, user class and action: users, actions, runs per user, who failed."""
    groups: dict[tuple[str, str], list[tuple[str, int, int]]] = {}
    for user, action, runs, failed in rows:
        groups.setdefault((_user_order(user)[0], action), []).append((user, runs, failed))
    lines = []
    for (base, action), members in sorted(groups.items()):
        runs = [member[1] for member in members]
        failing = [member[0] for member in members if member[2]]
        line = (f"{base} x{len(members)} ({action}): Run {sum(runs)} actions "
                f"({sum(member[2] for member in members)} failed); per user min {min(runs)} / median "
                f"{statistics.median(runs):g} / max {max(runs)}")
        if failing:
            more = f" and {len(failing) - named} more" if len(failing) > named else ""
            line += f"; failed: {', '.join(failing[:named])}{more}"
        lines.append(line)
    return lines


def set_exit_code(environment: Any, state, failed: bool, tolerated: frozenset[str] = frozenset(),
                  verdicts: list[Verdict] | None = None) -> None:
    """1 (or --exit-code-on-error) when an action failed, something leaked or the logs held errors
    (beyond what the SLA's `tolerated` criteria allow); else 3 when an SLA criterion failed; else 0."""
    code_on_error = getattr(environment.parsed_options, "exit_code_on_error", 1)
    if failed:
        environment.process_exit_code = max(environment.process_exit_code or 0, code_on_error)
    elif environment.process_exit_code is None:
        # errors found in the cloud's logs fail the run as Tempest's did; a failed status poll
        # inside an action that succeeded does not
        logged = bool(errors_of(environment, "LOG")) and "max_log_errors" not in tolerated
        sla_failed = any(not verdict.success for verdict in verdicts or [])
        environment.process_exit_code = code_on_error if logged else SLA_FAILED if sla_failed else 0
