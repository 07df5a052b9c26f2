"""Two runs side by side: `novastress-compare OLD.json NEW.json` (two `--summary-json` files).

    novastress-compare nova33.json nova34.json                        # the table; exit 0
    novastress-compare nova33.json nova34.json --max-degradation 20   # exit 1 past 20 % slower
    novastress-compare nova33.json nova34.json --html compare.html    # the same side by side, as a page

Per ACTION and ATOMIC row: runs, failure rate, p50 and p95 in both runs and their change; then
log errors and invariant violations by kind, and leaks. The verdict: a row present in both runs
with at least --min-runs in each whose p95 (--metric) grew by more than --max-degradation percent,
or whose failure rate grew by more than --max-failure-increase points, degrades the new run:
exit 1. A file that is not a summary: one line, exit 2.
"""
from __future__ import annotations

import argparse
import html
import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError, exit_with

KINDS = ("ACTION", "ATOMIC")
METRICS = {"p50": "median_ms", "p95": "p95_ms"}


@dataclass
class Row:
    """One ACTION or ATOMIC row of one run."""

    runs: int
    failures: int
    p50: float | None
    p95: float | None

    @property
    def failure_rate(self) -> float:
        return 100.0 * self.failures / self.runs if self.runs else 0.0


def load(path: str) -> dict:
    """A --summary-json document; UserError (one line) when it is not one."""
    try:
        document = json.loads(Path(path).read_text())
    except OSError as exc:
        raise UserError(f"{path}: cannot read it ({exc.strerror or exc}); give a --summary-json file") from None
    except ValueError as exc:
        raise UserError(f"{path}: not JSON ({exc}); give a --summary-json file") from None
    if not isinstance(document, dict) or not isinstance(document.get("requests"), list):
        raise UserError(f"{path}: not a novastress summary (no 'requests' list); write one with --summary-json")
    return document


def rows(document: dict) -> dict[tuple[str, str], Row]:
    return {(entry["type"], entry["name"]): Row(entry["requests"], entry["failures"], entry.get("median_ms"),
                                                 entry.get("p95_ms"))
            for entry in document["requests"] if entry.get("type") in KINDS}


def change(old: float | None, new: float | None) -> float | None:
    """Percent change old -> new; None when either is missing or old is 0."""
    if old is None or new is None or old <= 0:
        return None
    return 100.0 * (new - old) / old


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.0f}%"


def _counts(document: dict, key: str, field: str) -> dict[str, int]:
    found: Counter[str] = Counter()
    for item in document.get(key) or []:
        found[str(item.get(field) or "?")] += int(item.get("occurrences", 1))
    return found


def compare(old: dict, new: dict, args, cells: list[list[str]] | None = None) -> tuple[list[str], list[str]]:
    """The report's lines and the reasons the new run is degraded (none: it is not); `cells`
    gets the same rows as table cells (the HTML page's)."""
    before, after = rows(old), rows(new)
    lines = [f"{'type':<7} {'name':<40} {'runs':>13} {'failed %':>13} {'p50 ms':>17} {'p95 ms':>17} "
             f"{'p50':>6} {'p95':>6}"]
    cells = cells if cells is not None else []
    degraded: list[str] = []
    for key in sorted(set(before) | set(after)):
        kind, name = key
        was, now = before.get(key), after.get(key)
        if was is None or now is None:
            lines.append(f"{kind:<7} {name:<40} only in the {'new' if was is None else 'old'} run")
            cells.append([kind, name, f"only in the {'new' if was is None else 'old'} run"])
            continue
        p50, p95 = change(was.p50, now.p50), change(was.p95, now.p95)
        lines.append(f"{kind:<7} {name:<40} {was.runs:>6}/{now.runs:<6} {was.failure_rate:>6.1f}/"
                     f"{now.failure_rate:<6.1f} {_ms(was.p50):>8}/{_ms(now.p50):<8} "
                     f"{_ms(was.p95):>8}/{_ms(now.p95):<8} {_pct(p50):>6} {_pct(p95):>6}")
        cells.append([kind, name, f"{was.runs} / {now.runs}", f"{was.failure_rate:.1f} / {now.failure_rate:.1f}",
                      f"{_ms(was.p50)} / {_ms(now.p50)}", f"{_ms(was.p95)} / {_ms(now.p95)}", _pct(p50), _pct(p95)])
        if min(was.runs, now.runs) < args.min_runs:
            continue
        grew = p50 if args.metric == "p50" else p95
        if args.max_degradation is not None and grew is not None and grew > args.max_degradation:
            degraded.append(f"{kind} {name}: {args.metric} {_pct(grew)} (more than {args.max_degradation:g} %)")
        if now.failure_rate - was.failure_rate > args.max_failure_increase:
            degraded.append(f"{kind} {name}: failure rate {was.failure_rate:.1f} % -> {now.failure_rate:.1f} % "
                            f"(more than {args.max_failure_increase:g} points)")
    for title, key, field in (("log errors", "log_errors", "summary"), ("invariant violations", "violations", "kind"),
                              ("leaks", "leaks", "kind")):
        was, now = _counts(old, key, field), _counts(new, key, field)
        lines.append(f"{title}: {sum(was.values())} -> {sum(now.values())}")
        for name in sorted(set(was) | set(now)):
            lines.append(f"  {name}: {was.get(name, 0)} -> {now.get(name, 0)}"
                         f"{'  (new)' if name not in was else ''}")
    return lines, degraded


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="novastress-compare", description=__doc__.splitlines()[0])
    parser.add_argument("old", help="the earlier run's --summary-json file")
    parser.add_argument("new", help="the later run's --summary-json file")
    parser.add_argument("--max-degradation", type=float, default=None, metavar="PERCENT",
                        help="exit 1 when a row's --metric grew by more than this (default: report only)")
    parser.add_argument("--metric", choices=sorted(METRICS), default="p95", help="the time compared (default p95)")
    parser.add_argument("--max-failure-increase", type=float, default=5.0, metavar="POINTS",
                        help="exit 1 when a row's failure rate grew by more than this many points (default 5)")
    parser.add_argument("--min-runs", type=int, default=5,
                        help="rows with fewer runs in either file are shown, not judged (default 5)")
    parser.add_argument("--html", metavar="FILE", help="also write the comparison as an HTML page, side by side")
    return parser


def page(old_name: str, new_name: str, cells: list[list[str]], lines: list[str], verdict: str) -> str:
    """The comparison as an HTML page: the rows' table, the counts by kind, the verdict."""
    head = ("type", "name", "runs old / new", "failed % old / new", "p50 ms old / new", "p95 ms old / new",
            "p50 change", "p95 change")
    table = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>\n" for row in cells)
    counts = "\n".join(html.escape(line) for line in lines if not line.startswith(("ACTION", "ATOMIC", "type ")))
    return ("<!doctype html>\n<html><head><meta charset='utf-8'><title>novastress comparison</title>"
            "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
            "td,th{border:1px solid #bbb;padding:.25em .5em;text-align:left}</style></head><body>\n"
            f"<h1>{html.escape(old_name)} vs {html.escape(new_name)}</h1>\n"
            f"<table><tr>{''.join(f'<th>{html.escape(column)}</th>' for column in head)}</tr>\n{table}</table>\n"
            f"<pre>{counts}</pre>\n<p><b>{html.escape(verdict)}</b></p>\n</body></html>\n")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    parser.error = lambda message: exit_with("novastress-compare", f"{message} (see --help)")  # type: ignore
    args = parser.parse_args(argv)
    try:
        old, new = load(args.old), load(args.new)
    except UserError as exc:
        exit_with("novastress-compare", exc)
    print(f"old: {args.old} (run {old.get('run_id')}), new: {args.new} (run {new.get('run_id')})")
    cells: list[list[str]] = []
    lines, degraded = compare(old, new, args, cells)
    print("\n".join(lines))
    verdict = "DEGRADED: " + "; ".join(degraded) if degraded else "Verdict: " + (
        "not degraded" if args.max_degradation is not None else "report only (no --max-degradation)")
    if args.html:
        try:
            Path(args.html).write_text(page(args.old, args.new, cells, lines, verdict))
        except OSError as exc:
            exit_with("novastress-compare", f"cannot write {args.html}: {exc.strerror or exc}")
    print(verdict, flush=True)
    return 1 if degraded else 0


if __name__ == "__main__":
    sys.exit(main())
