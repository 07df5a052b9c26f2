"""Extra web UI tabs, their CSV downloads, and our options in the start form.

    locust -f locustfiles/create_destroy.py      # then open http://localhost:8089

* **Findings** — the run's occurrences grouped into findings (findings.py): a 5xx by service,
  route, status and fault class, a logged error by service, logger and exception, an invariant
  by its class; each with its count, first and last time, actions, users, hosts and request ids.
* **Log errors** — time, host, file, the record's lines, the action and global request id it
  was pinned on (newest first); **Actions** — per action and per worker: runs, failures,
  median/p95 duration. Both come from report.py, refresh with Locust's stats poll, and download
  as CSV from the "Download Data" tab (`/novastress/log-errors.csv`, `/novastress/actions.csv`).
  **SLA** — each `--sla` criterion on each action: its limit, its value and Passed/FAILED, as
  judged every few seconds while the run goes.
* Every novastress option is in the start form's "Custom parameters"; passwords, secrets and
  tokens are password fields that never carry a value to the page, and an empty field keeps
  the configured value (the embedded cloud's credentials the master handed the workers, a
  password from the command line) instead of blanking it. A value an option cannot take, or
  one the preflight's option checks refuse (a storm ratio outside 0-1), is said on the page and
  the run does not start.
"""
from __future__ import annotations

import json
import time

from flask import Blueprint, jsonify, make_response, request
from werkzeug.datastructures import ImmutableMultiDict

from . import options, report as run_reports
from .state import class_hooks

LOG_ERRORS = "novastress-log-errors"
ACTIONS = "novastress-actions"
SLA = "novastress-sla"
FINDINGS = "novastress-findings"
# rows shown in a tab: the CSV has them all; a huge table makes the page crawl
MAX_ROWS = 500

TABS = [{"title": "Findings", "key": FINDINGS}, {"title": "Log errors", "key": LOG_ERRORS},
        {"title": "Actions", "key": ACTIONS}, {"title": "SLA", "key": SLA}]
# each tab's table: the row key and the column title of each column
TABLES = [{"key": tab, "structure": [{"key": key, "title": title} for key, title in columns]} for tab, columns in (
    (FINDINGS, (("kind", "Kind"), ("title", "Finding"), ("count", "Count"), ("first", "First"), ("last", "Last"),
                ("actions", "Actions"), ("users", "Users"), ("hosts", "Hosts"), ("request_ids", "Request ids"))),
    (LOG_ERRORS, (("time", "Time"), ("host", "Host"), ("file", "File"), ("lines", "Lines"), ("action", "Action"),
                  ("user", "User"), ("request_id", "Request id"), ("fault", "During fault"))),
    (ACTIONS, (("action", "Action"), ("worker", "Worker"), ("runs", "Runs"), ("failures", "Failures"),
               ("median_ms", "Median (ms)"), ("p95_ms", "95%ile (ms)"), ("average_ms", "Average (ms)"))),
    (SLA, (("criterion", "Criterion"), ("subject", "Action"), ("limit", "Limit"), ("value", "Value"),
           ("status", "Status"), ("detail", "Detail"))))]
CSV_FILES = [{"href": "./novastress/log-errors.csv", "title": "Download novastress log errors CSV"},
             {"href": "./novastress/actions.csv", "title": "Download novastress actions per worker CSV"}]


def register(events) -> None:
    """Install the tabs on the web UI of the master or local runner (once per Events object)."""
    if getattr(events, "_novastress_webui_registered", False):
        return
    events._novastress_webui_registered = True
    events.init.add_listener(_on_init)


def _on_init(environment, runner=None, web_ui=None, **_kwargs) -> None:
    if web_ui is not None and hasattr(environment.parsed_options, "prefix"):
        install(environment, web_ui)


def our_options() -> dict[str, bool]:
    """dest -> is secret, for every novastress option shown in the form."""
    return {dest: opt.secret for dest, opt in options.ALL.items() if opt.web_ui}


def install(environment, web_ui) -> None:
    """Add the tabs, the CSV routes, the stats hook and the form's secret handling."""
    web_ui.template_args.update(extended_tabs=TABS, extended_tables=TABLES, extended_csv_files=CSV_FILES)
    report = run_reports.run_report(environment)
    blueprint = Blueprint("novastress", __name__)
    for name, table in (("log_errors", run_reports.log_errors_csv), ("actions", run_reports.actions_csv)):
        def download(table=table, name=name):
            return _csv_response(table(environment), f"novastress_{name}")
        blueprint.add_url_rule(f"/novastress/{name.replace('_', '-')}.csv", f"{name}_csv",
                               web_ui.auth_required_if_enabled(download))
    web_ui.app.register_blueprint(blueprint)

    @web_ui.app.after_request
    def add_tables(response):
        if request.path.rstrip("/").endswith("/stats/requests") and response.is_json:
            payload = response.get_json()
            log_errors = [dict(row, lines="\n".join(row["lines"]))
                          for row in run_reports.log_error_rows(environment)[:MAX_ROWS]]
            verdicts = [dict(v.as_dict(), status="Passed" if v.success else "FAILED") for v in report.verdicts]
            payload["extended_stats"] = [{"key": FINDINGS, "data": report.findings.rows()[:MAX_ROWS]},
                                         {"key": LOG_ERRORS, "data": log_errors},
                                         {"key": ACTIONS, "data": report.action_rows()[:MAX_ROWS]},
                                         {"key": SLA, "data": verdicts[:MAX_ROWS]}]
            response.set_data(json.dumps(payload))
        return response

    @web_ui.app.before_request
    def keep_configured_values():
        if request.method == "POST" and request.path.rstrip("/").endswith("/swarm"):
            request.form = form_without_blanks(request.form, our_options())
            checks = class_hooks(environment, "option_checks")
            problem = form_problem(request.form, environment.parsed_options, checks)
            if problem is not None:   # the run does not start; the page shows why
                return jsonify({"success": False, "message": problem, "host": environment.host})
        return None

    hide_secret_values(web_ui, our_options())


def form_without_blanks(form, ours: dict[str, bool]) -> ImmutableMultiDict:
    """The start form minus our fields left empty, so they keep their configured value.

    Locust writes every form field into parsed_options, typed like the old value: an empty
    password field would blank the password the command line (or the embedded cloud) set.
    """
    kept = [(key, value) for key, values in form.lists() for value in values
            if not (key in ours and str(value).strip() == "")]
    return ImmutableMultiDict(kept)


def form_problem(form, parsed_options, checks=()) -> str | None:
    """What is wrong with our options as the start form sets them, in one line (None: nothing):
    a value its option cannot take, or one of `checks` (the user classes' option_checks, which the
    preflight runs too) refuses."""
    import argparse
    from types import SimpleNamespace

    if parsed_options is None:
        return None
    values = dict(vars(parsed_options))
    for key, value in form.items():
        option = options.ALL.get(key)
        if option is None or option.switch or option.secret:
            continue
        try:
            values[key] = option.type(value) if option.type else value
        except (ValueError, TypeError, argparse.ArgumentTypeError) as exc:
            return f"{option.flag}: invalid value {value!r} ({exc})"
        if option.choices and values[key] not in option.choices:
            return f"{option.flag}: invalid choice {value!r} (choose from {', '.join(option.choices)})"
    for check in checks:
        try:
            check(SimpleNamespace(**values))
        except ValueError as exc:
            return str(exc)
    return None


def hide_secret_values(web_ui, ours: dict[str, bool]) -> None:
    """The page must never carry a secret: blank the defaults of secret fields in the form."""
    update = web_ui.update_template_args

    def update_without_secrets() -> None:
        update()
        extra = web_ui.template_args.get("extra_options") or {}
        for dest, spec in extra.items():
            if isinstance(spec, dict) and (spec.get("is_secret") or ours.get(dest)):
                spec["is_secret"] = True
                spec["default_value"] = None

    web_ui.update_template_args = update_without_secrets


def _csv_response(text: str, name: str):
    response = make_response(text)
    response.headers["Content-Type"] = "text/csv"
    response.headers["Content-Disposition"] = f"attachment;filename={name}_{int(time.time())}.csv"
    return response
