"""The run's own tables beside Locust's: actions per worker, log errors, and the summary files.

    locust -f locustfiles/create_destroy.py --headless -t 60s \\
        --csv out/run --html out/run.html --summary-json out/summary.json

Locust's stats (and so its charts, `--csv` and `--html`) already hold our rows:
`ACTION <name>`, `ATOMIC <step>`, `LOG <host>:<file>`. What they cannot hold is kept here:

* **Actions** — per action *and per worker*: runs, failures, median/p95/average duration.
  Each process times its actions in a Locust `RequestStats` of its own; workers ship it in
  their reports, as Locust ships its stats, and the master merges it per worker.
* **Log errors** — every `LOG` failure the master's watcher fires: time, host, file, the
  record's lines, the action and global request id it was pinned on.
* **SLA** — the successful iterations' and atomic steps' timings the `--sla` criteria judge
  (sla.py), shipped and merged like the actions; the verdicts, every few seconds while the run
  goes (`--sla-abort` stops it at the first failed one) and at its end.

Both feed the web UI tabs (webui.py), `<csv prefix>_actions.csv` and
`<csv prefix>_log_errors.csv` with `--csv`, `--summary-json` and an HTML summary (written next
to `--html` as `<name>.novastress.html`, or to `--summary-html`), since Locust's HTML report
has no place for extra tables.
"""
from __future__ import annotations

import csv
import html
import io
import json
import logging
import re
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gevent
from locust.runners import WorkerRunner
from locust.stats import PERCENTILES_TO_REPORT, RequestStats, StatsCSV, StatsEntry

from . import options as registry, sla as sla_criteria, summary
from .findings import Findings, occurrence_of, write_reports
from .state import request_index, run_state

LOG = logging.getLogger("novastress")
TITLE = "novastress reports"
MAX_LOG_ERRORS = 1000
SLA_INTERVAL = 2.0      # seconds between live judgements of the --sla criteria
ACTION_COLUMNS = ("action", "worker", "runs", "failures", "median_ms", "p95_ms", "average_ms", "max_ms")
LOG_ERROR_COLUMNS = ("time", "host", "file", "summary", "action", "user", "request_id", "fault", "lines")
FINDING_COLUMNS = ("kind", "title", "count", "first", "last", "actions", "users", "hosts", "request_ids")
SLA_COLUMNS = ("criterion", "subject", "limit", "value", "success", "detail")
REQUEST_ID = re.compile(r"\breq-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")


@dataclass
class LogErrorRow:
    """One logged error record, as the watcher reported it."""

    time: str
    host: str
    file: str
    summary: str
    action: str
    request_id: str
    lines: list[str] = field(default_factory=list)
    user: str = ""
    fault: str = ""       # the fault (faultplan.py) whose window was open when it was logged


class RunReport:
    """Per-process store of the extra tables (on the master: every worker's merged)."""

    def __init__(self) -> None:
        self.actions = RequestStats(use_response_times_cache=False)
        # successful ACTION and ATOMIC timings, keyed (name, "ACTION" / "ATOMIC"): what --sla judges
        self.successes = RequestStats(use_response_times_cache=False)
        self.record_successes = False    # set at each test start: only when an SLA is given
        self.log_errors: deque[LogErrorRow] = deque(maxlen=MAX_LOG_ERRORS)
        self.log_error_count = 0
        self.verdicts: list[sla_criteria.Verdict] = []     # the latest judgement of --sla
        self.findings = Findings()
        self.ships = False               # a worker: its findings' occurrences go to the master
        self.index = None                # the request index: which action an invariant's ids name

    # -- recording ------------------------------------------------------------------
    def on_request(self, worker: str, request_type: str, name: str, response_time: float,
                   exception: Any, context: dict | None) -> None:
        if exception is not None:
            occurrence = occurrence_of(request_type, name, exception, context, self.index)
            if occurrence is not None:
                self.findings.add(occurrence, ship=self.ships,
                                  timeline=self.index.timeline if self.index is not None else None)
        if self.record_successes and exception is None and request_type in ("ACTION", "ATOMIC"):
            self.successes.log_request(request_type, name, round(response_time), 0)
        if request_type == "ACTION":
            self.actions.log_request(worker, name, round(response_time), 0)
            if exception is not None:
                self.actions.log_error(worker, name, exception)
        elif request_type == "LOG":
            context = context or {}
            self.log_error_count += 1
            self.log_errors.append(LogErrorRow(
                time=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime()),
                host=str(context.get("host") or name.partition(":")[0]),
                file=str(context.get("file") or name.partition(":")[2]),
                summary=str(exception or "").splitlines()[0] if exception else "",
                action=str(context.get("action") or ""),
                user=str(context.get("user") or ""),
                request_id=str(context.get("global_request_id") or ""),
                fault=str(context.get("fault") or ""),
                lines=[str(line) for line in context.get("lines") or []]))

    def stripped(self) -> dict[str, list[dict]]:
        """This worker's action timings and successes since the last report (then forgotten here)."""
        stripped: dict[str, Any] = {
            name: [entry.get_stripped_report() for entry in stats.entries.values() if entry.num_requests]
            for name, stats in (("actions", self.actions), ("successes", self.successes))}
        stripped["findings"] = self.findings.shipped()
        return stripped

    def merge(self, worker: str, reported: dict[str, list[dict]]) -> None:
        for data in reported.get("actions") or []:
            data = dict(data, method=worker)
            self.actions.get(data["name"], worker).extend(StatsEntry.unserialize(data, self.actions))
        for data in reported.get("successes") or []:
            self.successes.get(data["name"], data["method"]).extend(StatsEntry.unserialize(data, self.successes))
        self.findings.merge(reported.get("findings") or {})
        if self.index is not None:
            self.findings.fill_timelines(self.index.timeline)

    def reset(self) -> None:
        self.actions.reset_all()
        self.successes.reset_all()
        self.log_errors.clear()
        self.log_error_count = 0
        self.verdicts = []
        self.findings.reset()

    def per_action(self) -> dict[str, StatsEntry]:
        """Each action's iterations over every worker."""
        merged = RequestStats(use_response_times_cache=False)
        for (name, _worker), entry in self.actions.entries.items():
            merged.get(name, "ACTION").extend(entry)
        return {name: entry for (name, _method), entry in merged.entries.items() if entry.num_requests}

    def judge(self, sla: "sla_criteria.Sla", violations: int,
              per_action: dict[str, "sla_criteria.Sla"] | None = None) -> list["sla_criteria.Verdict"]:
        """The --sla criteria on what the run measured so far (kept as the latest verdicts)."""
        self.verdicts = sla_criteria.judge(sla, self.per_action(), dict(self.successes.entries),
                                           self.log_error_count, violations, per_action)
        return self.verdicts

    # -- tables ---------------------------------------------------------------------
    def action_rows(self) -> list[dict]:
        return [{"action": name, "worker": worker, "runs": entry.num_requests, **_timings(entry),
                 "average_ms": round(entry.avg_response_time), "max_ms": round(entry.max_response_time)}
                for (name, worker), entry in sorted(self.actions.entries.items()) if entry.num_requests]

    def log_error_rows(self, index=None) -> list[dict]:
        """Newest first; rows not pinned on an action yet are looked up again in `index`."""
        if index is not None:
            for row in self.log_errors:
                if not row.action:
                    pin(row, index)
        return [asdict(row) for row in reversed(self.log_errors)]


def _timings(entry: StatsEntry) -> dict:
    return {"failures": entry.num_failures, "median_ms": entry.get_response_time_percentile(0.5),
            "p95_ms": entry.get_response_time_percentile(0.95)}


def pin(row: LogErrorRow, index) -> None:
    """Name the action whose request id the record carries.

    In a distributed run the watcher (on the master) often sees an error before the worker's
    report has brought the action's request ids: the row is pinned when it is shown instead.
    """
    for line in row.lines[:200]:
        for request_id in REQUEST_ID.findall(line):
            record = index.lookup(request_id)
            if record is not None:
                row.action, row.request_id = record.action, record.global_request_id
                row.user = record.who
                return


def worker_label(client_id: str) -> str:
    """The short worker name the summary uses too (`<host>_<hex>` -> first 8 hex digits)."""
    return client_id.rsplit("_", 1)[-1][:8]


def run_report(environment) -> RunReport:
    """The RunReport of this Environment, created on first use."""
    state = run_state(environment)
    if state.report is None:
        state.report = RunReport()
    return state.report


def to_csv(rows: list[dict], columns: tuple[str, ...]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "\n".join(value) if isinstance(value, list) else value
                         for key, value in row.items()})
    return buffer.getvalue()


def actions_csv(environment) -> str:
    return to_csv(run_report(environment).action_rows(), ACTION_COLUMNS)


def log_errors_csv(environment) -> str:
    return to_csv(log_error_rows(environment), LOG_ERROR_COLUMNS)


def log_error_rows(environment) -> list[dict]:
    """The Log errors table, pinned on actions with everything the workers reported so far."""
    return run_report(environment).log_error_rows(request_index(environment))


# -- the SLA ---------------------------------------------------------------------------
def run_sla(environment) -> sla_criteria.Sla:
    """--sla's criteria (none without it)."""
    return sla_criteria.parse(getattr(environment.parsed_options, "sla", None))


def sla_given(environment) -> bool:
    return bool(run_sla(environment)) or bool(entry_slas(environment))


def entry_slas(environment) -> dict[str, sla_criteria.Sla]:
    """Action row -> the criteria its scenario entry gives (a user class's `entry_sla`)."""
    return dict(own for own in (getattr(cls, "entry_sla", None) for cls in environment.user_classes or []) if own)


def sla_verdicts(environment) -> list[sla_criteria.Verdict] | None:
    """The --sla criteria (and the scenario entries' own) judged on the run so far; None when
    none are given."""
    if not sla_given(environment):
        return None
    return run_report(environment).judge(run_sla(environment), violation_count(environment), entry_slas(environment))


def sla_tolerates(environment) -> frozenset[str]:
    """The criteria that replace the exit code's zero tolerance: the run's failure_rate,
    max_log_errors and max_invariant_violations; failure_rate also when every action that
    failed has an entry's own."""
    sla = run_sla(environment)
    tolerated = {name for name in ("failure_rate", "max_log_errors", "max_invariant_violations") if sla.limits(name)}
    entries = entry_slas(environment)
    failing = [name for name, entry in run_report(environment).per_action().items() if entry.num_failures]
    if failing and all(name in entries and entries[name].limits("failure_rate") for name in failing):
        tolerated.add("failure_rate")
    return frozenset(tolerated)


def violation_count(environment) -> int:
    return sum(error.occurrences for error in summary.errors_of(environment, "INVARIANT"))


def _judge_live(environment) -> None:
    """Judge the criteria every SLA_INTERVAL seconds (the web UI's SLA tab shows the latest);
    with --sla-abort, the first failed one stops the run."""
    while True:
        gevent.sleep(SLA_INTERVAL)
        try:
            verdicts = sla_verdicts(environment) or []
        except Exception as exc:  # a judgement that cannot be made now may be made next time
            LOG.warning("novastress: could not judge the SLA: %s", exc)
            continue
        failed = [v for v in verdicts if not v.success]
        if failed and getattr(environment.parsed_options, "sla_abort", False):
            first = failed[0]
            run_state(environment).stop_run(f"SLA failed (--sla-abort): {first.criterion} of {first.subject} is "
                                            f"{first.value}, the limit {first.limit}")
            return


# -- the summary files ------------------------------------------------------------------
def summary_document(environment, exit_code: int | None) -> dict:
    """Everything the Tempest-style summary says, and the extra tables, as one JSON-able dict."""
    state = run_state(environment)
    tally = summary.collect(state)
    users = [{"user": user, "action": action, "runs": runs, "failed": failed}
             for user in sorted(tally) for action, (runs, failed) in sorted(tally[user].items())]
    runner = environment.runner
    requests = [{"type": entry.method, "name": entry.name, "requests": entry.num_requests, **_timings(entry)}
                for entry in sorted(runner.stats.entries.values() if runner is not None else [],
                                    key=lambda e: (e.method or "", e.name))]
    report = run_report(environment)
    return {
        "run_id": state.run_id, "prefix": state.prefix,
        "target": state.target.who if state.target is not None else None,   # names, never secrets
        "exit_code": exit_code,
        "totals": {"runs": sum(u["runs"] for u in users), "failed": sum(u["failed"] for u in users),
                   "interrupted": state.interrupted, "log_errors": report.log_error_count},
        "users": users, "actions": report.action_rows(), "log_errors": log_error_rows(environment),
        "swept": list(state.swept),
        # id None: what the sweep could not check
        "leaks": [{"kind": leak.kind, "name": leak.name, "id": leak.resource_id, "error": leak.error}
                  for leak in state.leaks],
        "requests": requests,
        "violations": violation_rows(environment),
        "log_watch": log_watch_coverage(environment),
        # what the cloud offered, what its shape left out, and how often a failing action slowed down
        "profile": state.profile.as_dict() if state.profile is not None else None,
        "skipped": list(state.skipped),
        "backoffs": state.all_backoffs(),
        "sla": sla_document(environment),
        "faults": [record.as_dict() for record in state.faults.records] if state.faults is not None else [],
        "findings": [finding.as_dict() for finding in report.findings.ranked()],
    }


def final_verdicts(environment) -> list[sla_criteria.Verdict]:
    """The verdicts of the end of the run: the last judgement, or one now."""
    return run_report(environment).verdicts or sla_verdicts(environment) or []


def sla_document(environment) -> dict | None:
    """--sla's criteria and the verdicts of the end of the run (None without --sla)."""
    if not sla_given(environment):
        return None
    verdicts = final_verdicts(environment)
    return {"criteria": run_sla(environment).text(),
            "entries": {name: own.text() for name, own in entry_slas(environment).items()},
            "passed": all(v.success for v in verdicts), "verdicts": [v.as_dict() for v in verdicts]}


def violation_rows(environment) -> list[dict]:
    """Every invariant violation of the run, any worker's (Locust's error table holds them all):
    its kind, the server / project / group it is about, what was wrong and the request ids."""
    rows = []
    for error in summary.errors_of(environment, "INVARIANT"):
        # the error as Locust keeps it: "InvariantViolation('<subject>: <detail> [requests ...]')"
        text = re.sub(r"^\w+\((['\"])(.*)\1\)$", r"\2", str(error.error))
        subject, _, detail = text.partition(": ")
        rows.append({"kind": error.name, "subject": subject, "detail": detail,
                     "request_ids": re.findall(r"req-[0-9a-f-]{36}", detail), "occurrences": error.occurrences})
    return rows


def log_watch_coverage(environment) -> list[dict]:
    """Each watched host: state (watched, never reached, lost), files, seconds, error."""
    watch = run_state(environment).log_watch
    return [asdict(host) for host in getattr(watch, "coverage", [])]


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return f"<td><pre>{html.escape(chr(10).join(map(str, value)))}</pre></td>"
    return f"<td>{html.escape(str(value))}</td>"


def _table(title: str, rows: list[dict], columns: tuple[str, ...]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = [f"<tr>{''.join(_cell(row.get(column, '')) for column in columns)}</tr>" for row in rows] or \
        [f'<tr><td colspan="{len(columns)}">none</td></tr>']
    return f"<h2>{html.escape(title)}</h2>\n<table><tr>{head}</tr>\n" + "\n".join(body) + "</table>\n"


def summary_html(document: dict) -> str:
    totals = document["totals"]
    title = f"novastress run {document['run_id']}"
    parts = [
        "<!doctype html>\n<html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin-bottom:1em}"
        "td,th{border:1px solid #bbb;padding:.25em .5em;text-align:left;vertical-align:top}"
        "pre{margin:0;font-size:.85em;white-space:pre-wrap}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Target: {html.escape(str(document['target']))}. Resources named "
        f"{html.escape(document['prefix'])}-{html.escape(document['run_id'])}-*. Exit code "
        f"{html.escape(str(document['exit_code']))}.</p>",
        f"<p>Run {totals['runs']} actions ({totals['failed']} failed); {totals['log_errors']} log errors; "
        f"{totals['interrupted']} interrupted at stop.</p>",
        *([f"<p>SLA {'passed' if document['sla']['passed'] else 'FAILED'}: "
           f"{html.escape(document['sla']['criteria'])}</p>",
           _table("SLA", document["sla"]["verdicts"], SLA_COLUMNS)] if document.get("sla") else []),
        _table("Findings", [dict(f, actions=", ".join(f"{k} x{v}" for k, v in f["actions"].items()),
                                 request_ids=" ".join(f["request_ids"][:5])) for f in document.get("findings") or []],
               ("kind", "title", "count", "actions", "request_ids")),
        _table("Actions", document["actions"], ACTION_COLUMNS),
        _table("Log errors", document["log_errors"], LOG_ERROR_COLUMNS),
        _table("Users", document["users"], ("user", "action", "runs", "failed")),
        _table("Requests", document["requests"], ("type", "name", "requests", "failures", "median_ms", "p95_ms")),
        _table("Swept", [{"name": name} for name in document["swept"]], ("name",)),
        _table("Leaked", [{**leak, "id": leak["id"] or "not checked"} for leak in document["leaks"]],
               ("kind", "name", "id", "error")),
        "</body></html>\n",
    ]
    return "\n".join(parts)


def companion_html_path(options) -> str | None:
    """--summary-html, or `<--html name>.novastress.html` beside Locust's report."""
    if getattr(options, "summary_html", None):
        return options.summary_html
    html_file = getattr(options, "html_file", None)
    if html_file:
        path = Path(html_file)
        return str(path.with_name(f"{path.stem}.novastress.html"))
    return None


def final_locust_csvs(environment, prefix: str) -> list[tuple[str, str]]:
    """Locust's own --csv tables as they stand at exit.

    Locust rewrites them once a second from a greenlet and stops at exit without a last
    write: the final second — with a short run, most of it — would be missing, and with it
    our last ACTION and LOG rows. Written from the `quit` event, before Locust closes its files.
    """
    if environment.runner is None:
        return []
    tables = StatsCSV(environment, PERCENTILES_TO_REPORT)
    files = []
    for suffix, write in (("stats", tables.requests_csv), ("failures", tables.failures_csv),
                          ("exceptions", tables.exceptions_csv)):
        buffer = io.StringIO()
        write(csv.writer(buffer))
        files.append((f"{prefix}_{suffix}.csv", buffer.getvalue()))
    return files


def _findings_reports(environment, document: dict) -> list[str]:
    """--findings-dir: a report.md per finding, with no secret of the run's options in it."""
    report = run_report(environment)
    options = environment.parsed_options
    secrets = [str(getattr(options, dest, "") or "") for dest, option in registry.ALL.items() if option.secret]
    state = run_state(environment)
    auth = getattr(state.target, "auth", None) or {}     # --os-admin-password is among the options
    secrets += [str(value) for key, value in auth.items() if re.search(r"password|secret|token", key)]
    try:
        return write_reports(options.findings_dir, report.findings, document, secrets)
    except OSError as error:
        LOG.error("novastress: cannot write the findings to %s: %s", options.findings_dir, error.strerror or error)
        return []


def write_files(environment, exit_code: int | None) -> list[str]:
    """Write --summary-json, the HTML summary and the --csv companions; return the paths."""
    options = environment.parsed_options
    written: list[str] = []
    targets: list[tuple[str, Any]] = []
    document = None
    html_path = companion_html_path(options)
    report = run_report(environment)
    if report.index is not None:
        # the last worker reports may have brought the actions of a late finding: its timeline now,
        # before the summary and the reports are written from it
        report.findings.fill_timelines(report.index.timeline, within=float("inf"), again_within=float("inf"))
    if getattr(options, "summary_json", None) or html_path or getattr(options, "findings_dir", None):
        document = summary_document(environment, exit_code)
    if getattr(options, "summary_json", None):
        targets.append((options.summary_json, json.dumps(document, indent=2) + "\n"))
    if html_path:
        targets.append((html_path, summary_html(document)))
    prefix = getattr(options, "csv_prefix", None)
    if prefix:
        targets += final_locust_csvs(environment, prefix)
        targets += [(f"{prefix}_actions.csv", actions_csv(environment)),
                    (f"{prefix}_log_errors.csv", log_errors_csv(environment)),
                    (f"{prefix}_findings.csv", to_csv(report.findings.rows(), FINDING_COLUMNS))]
        if sla_given(environment):
            verdicts = [v.as_dict() for v in final_verdicts(environment)]
            targets.append((f"{prefix}_sla.csv", to_csv(verdicts, SLA_COLUMNS)))
    if getattr(options, "findings_dir", None):
        written += _findings_reports(environment, document)
    for path, text in targets:
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text, encoding="utf-8")
            written.append(path)
        except OSError as error:
            LOG.error("novastress: cannot write %s: %s", path, error.strerror or error)
    if written:
        LOG.info("novastress: wrote %s", ", ".join(written))
    return written


# -- wiring --------------------------------------------------------------------------
def add_arguments(parser) -> None:
    group = parser.add_argument_group(TITLE)
    for flag, help_text in (
            ("--summary-json", "write the run's summary (users, actions per worker, log errors, "
                               "leaks, request stats) to this JSON file"),
            ("--summary-html", "write the same summary as an HTML page (default with --html: "
                               "<name>.novastress.html beside Locust's report)"),
            ("--findings-dir", "write one folder per finding here, each with report.md: the finding as a "
                               "bug report (cloud versions, expected and happened, the timeline of the "
                               "requests that led to it, the first log record)")):
        action = group.add_argument(flag, default=None, help=help_text,
                                    dest=flag.lstrip("-").replace("-", "_"))
        # written at exit from the command line's value: not a field of the web UI's form
        action.include_in_web_ui = False


def register(events) -> None:
    """Options, recording listeners and the files at exit (once per Events object)."""
    if getattr(events, "_novastress_report_registered", False):
        return
    events._novastress_report_registered = True
    events.init_command_line_parser.add_listener(add_arguments)
    events.init.add_listener(_on_init)


def _on_init(environment, runner=None, **_kwargs) -> None:
    if environment.parsed_options is None or not hasattr(environment.parsed_options, "prefix"):
        return
    report = run_report(environment)
    report.index = request_index(environment)
    worker = "local"

    def note_sla(**_kw) -> None:
        # a worker learns the master's options (--sla with them) at test start
        report.record_successes = sla_given(environment)

    note_sla()
    environment.events.test_start.add_listener(note_sla)
    if isinstance(runner, WorkerRunner):
        worker = worker_label(runner.client_id)
        report.ships = True
        environment.events.report_to_master.add_listener(
            lambda client_id, data, **kw: data.__setitem__("novastress_actions", report.stripped()))
    else:
        environment.events.worker_report.add_listener(
            lambda client_id, data, **kw: report.merge(worker_label(client_id),
                                                       data.get("novastress_actions") or {}))
        # the quit event comes last, with the final exit code; it names no environment
        environment.events.quit.add_listener(lambda exit_code, **kw: write_files(environment, exit_code))
        judging: list[gevent.Greenlet] = []

        def start_judging(**_kw) -> None:
            if not judging and sla_given(environment):
                judging.append(gevent.spawn(_judge_live, environment))

        def stop_judging(**_kw) -> None:
            while judging:
                judging.pop().kill(block=False)

        environment.events.test_start.add_listener(start_judging)
        environment.events.test_stop.add_listener(stop_judging)

    def on_request(request_type, name, response_time, exception=None, context=None, **_kw) -> None:
        report.on_request(worker, request_type, name, response_time, exception, context)

    environment.events.request.add_listener(on_request)
    environment.events.reset_stats.add_listener(report.reset)
