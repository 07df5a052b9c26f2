"""Findings: the occurrences of a run grouped into what a bug report is about.

    findings = Findings()
    findings.add(Occurrence("5xx", "compute POST /servers/{id}/action", "... -> 500 Unexpected API Error ...
                            <class 'nova.exception.InstanceNotFound'> [req-...]", request_id="req-..."))
    for finding in findings.ranked():
        print(finding.line())     # 5xx compute POST /servers/{id}/action 500 InstanceNotFound: 3 times ...

Three kinds, each grouped by what makes two occurrences the same bug:

* **5xx** — an API answer of 500 or more, by service, method, route, status and fault class (the
  exception class Nova names in its 500 body, else the message with ids and numbers taken out);
* **log** — an ERROR/TRACE record the log watch reported, by service (the log file), logger and
  exception type (else the normalised message);
* **invariant** — a violated invariant, by its class.

Each finding keeps its count, first and last time, the request ids (the first REQUEST_IDS_KEPT), the
actions and users involved, the hosts, and its first occurrence's text and lines. Workers record
their own 5xx and invariant occurrences and ship them with their reports (report.py); the master's
log watch adds the log ones. The summary, `--summary-json` and the web UI's Findings tab show them.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Callable

from .repro import replay_plan, script

REQUEST_IDS_KEPT = 50
USERS_KEPT = 20
LINES_KEPT = 40
SHIPPED_PER_REPORT = 500      # occurrences a worker ships per report; more are counted, not detailed

_UUID = r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
REQUEST_ID = re.compile(rf"\breq-{_UUID}\b")
_NORMALISE = (
    (REQUEST_ID, "{request_id}"),
    (re.compile(_UUID), "{id}"),
    (re.compile(r"(?<![\w.])/(?:[\w.@+-]+/)+[\w.@+-]*"), "{path}"),
    (re.compile(r"\b[0-9a-f]{12,}\b"), "{id}"),
    (re.compile(r"\b\d+(?:\.\d+)*\b"), "{n}"),
    (re.compile(r"'[^']*'|\"[^\"]*\""), "{text}"),
)
# Nova's 500 body: "Unexpected API Error. ... <class 'nova.exception.InstanceNotFound'>"
_NOVA_CLASS = re.compile(r"<class '([\w.]+)'>")
# "nova.exception.InstanceNotFound: Instance ... could not be found." (a traceback's last line,
# or a message quoting it): a dotted class name, or a bare one that says it is an error, then ":"
_EXCEPTION = re.compile(r"(?:^|[\s(])((?:[a-z_]\w*\.)+[A-Z]\w*|[A-Z]\w*(?:Error|Exception|Exceeded|Timeout|"
                        r"NotFound|Failure|Conflict|Violation))(?::\s|:?$)")
# the head of a Nova log line: time, pid, level, logger and the request context brackets
_LOG_HEAD = re.compile(r"^\d{4}-\d\d-\d\d[ T][\d:.]+\s+\d+\s+[A-Z]+\s+\S+\s+(?:\[[^\]]*\]\s*)*")
_LOGGER = re.compile(r"^\d{4}-\d\d-\d\d[ T][\d:.]+\s+\d+\s+(?:ERROR|CRITICAL|TRACE|WARNING)\s+(\S+)")
_SERVICE = re.compile(r"^(nova-[a-z]+|neutron-[a-z]+|glance-[a-z]+|cinder-[a-z]+|placement-api|keystone)")


def log_service(name: str) -> str:
    """The service of a watched log file (`host:/var/log/nova/nova-compute.log`): a host's own file
    (`nova-compute-compute-2.log`) is the same service as its peers'."""
    stem = re.sub(r"\.log(\.txt)?$", "", name.rpartition("/")[2].rpartition(":")[2])
    known = _SERVICE.match(stem)
    return known.group(1) if known else stem


def normalise(text: str, limit: int = 160) -> str:
    """The message with request ids, ids, paths, numbers and quoted values taken out."""
    for pattern, replacement in _NORMALISE:
        text = pattern.sub(replacement, text)
    return re.sub(r"\s+", " ", text).strip()[:limit]


def exception_type(lines: list[str]) -> str | None:
    """The exception a log record is about: the last one its traceback or message names."""
    for line in reversed(lines[:400]):
        body = _LOG_HEAD.sub("", line).strip()
        if body.startswith(("File ", "Traceback", "raise ", "return ", "^")):
            continue
        found = _EXCEPTION.search(body)
        if found:
            # oslo.messaging's copies of a remote exception: nova.exception_Remote.NoValidHost_Remote
            return found.group(1).replace("_Remote", "")
    return None


@dataclass
class Occurrence:
    """One thing that went wrong, as the process that saw it recorded it."""

    kind: str                   # "5xx", "log" or "invariant"
    name: str                   # the request's stats name, the log's host:file, the invariant's class
    text: str                   # the error as said (one line)
    time: float = field(default_factory=time.time)
    status: int | None = None
    request_ids: list[str] = field(default_factory=list)
    action: str = ""
    user: str = ""
    host: str = ""
    lines: list[str] = field(default_factory=list)
    fault: str = ""             # the fault window it fell in (faultplan.py)
    timeline: list[list] = field(default_factory=list)   # a new finding's: RequestIndex.timeline

    def key(self) -> tuple[str, ...]:
        if self.kind == "5xx":
            # "compute POST /servers/{id}/action reboot": the method and path, not what the name adds
            service, _, route = self.name.partition(" ")
            route = " ".join(route.split(" ")[:2]).split("?")[0]
            cause = _NOVA_CLASS.search(self.text)
            message = self.text.split(f"-> {self.status} ", 1)[-1] if self.status else self.text
            return ("5xx", service, route, str(self.status), cause.group(1) if cause else normalise(message, 100))
        if self.kind == "log":
            service = log_service(self.name)
            head = next(filter(None, map(_LOGGER.match, self.lines)), None)
            logger = head.group(1) if head else ""
            cause = exception_type(self.lines) or normalise(_LOG_HEAD.sub("", self.lines[0]) if self.lines
                                                           else self.text, 100)
            return ("log", service, logger, cause)
        return ("invariant", self.name)


@dataclass
class Finding:
    """Occurrences that are one bug: how often, when, by which actions, with which request ids."""

    kind: str
    key: list[str]
    title: str
    count: int = 0
    first: float = 0.0
    last: float = 0.0
    request_ids: list[str] = field(default_factory=list)
    actions: dict[str, int] = field(default_factory=dict)
    users: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    example: str = ""
    lines: list[str] = field(default_factory=list)
    # the API calls that led to its first occurrence: [time, method, name, status, request id,
    # client, server action, action, user] (RequestIndex.timeline)
    timeline: list[list] = field(default_factory=list)

    @property
    def id(self) -> str:
        """A short stable name: the kind and a slug of the key (a folder name for its report)."""
        slug = re.sub(r"[^A-Za-z0-9]+", "-", "-".join(self.key[1:])).strip("-").lower()
        return f"{self.kind}-{slug[:80]}".rstrip("-")

    def add(self, occurrence: Occurrence) -> None:
        if not self.count:
            self.first, self.example = occurrence.time, occurrence.text
            self.lines = occurrence.lines[:LINES_KEPT]
        self.count += 1
        self.first, self.last = min(self.first, occurrence.time), max(self.last, occurrence.time)
        for request_id in occurrence.request_ids:
            if len(self.request_ids) < REQUEST_IDS_KEPT and request_id not in self.request_ids:
                self.request_ids.append(request_id)
        if occurrence.action:
            self.actions[occurrence.action] = self.actions.get(occurrence.action, 0) + 1
        if occurrence.user and occurrence.user not in self.users and len(self.users) < USERS_KEPT:
            self.users.append(occurrence.user)
        if occurrence.host and occurrence.host not in self.hosts:
            self.hosts.append(occurrence.host)
        if occurrence.fault and occurrence.fault not in self.faults:
            self.faults.append(occurrence.fault)
        if not self.timeline and occurrence.timeline:
            self.timeline = occurrence.timeline

    def line(self) -> str:
        """One line of the summary."""
        when = time.strftime("%H:%M:%S", time.localtime(self.first)) + \
            (time.strftime("-%H:%M:%S", time.localtime(self.last)) if self.count > 1 else "")
        actions = ", ".join(f"{name} x{count}" for name, count in Counter(self.actions).most_common(3))
        text = f"FINDING {self.title}: {self.count} time{'s' if self.count != 1 else ''} ({when})"
        if actions:
            text += f"; actions {actions}"
        if self.hosts:
            text += f"; hosts {', '.join(self.hosts[:3])}"
        if self.faults:
            text += f"; during fault {', '.join(self.faults[:2])}"
        if self.request_ids:
            text += f"; requests {', '.join(self.request_ids[:2])}{' ...' if len(self.request_ids) > 2 else ''}"
        if self.kind == "invariant" and self.example:
            # its title names only the class: the first one says which resource and what it saw
            text += f"; first: {self.example[:300]}"
        return text

    def as_dict(self) -> dict:
        return dict(asdict(self), id=self.id)


def _title(key: tuple[str, ...]) -> str:
    if key[0] == "5xx":
        _, service, route, status, cause = key
        return f"{status} from {service} {route}: {cause}"
    if key[0] == "log":
        _, service, logger, cause = key
        return f"{service} logs {cause}" + (f" ({logger})" if logger else "")
    return f"invariant {key[1]}"


class Findings:
    """The run's findings in one process; the master's hold every worker's occurrences too."""

    def __init__(self) -> None:
        self.by_key: dict[tuple[str, ...], Finding] = {}
        self.unshipped: list[dict] = []       # a worker's occurrences since its last report
        self.dropped = 0                      # occurrences past SHIPPED_PER_REPORT, counted only
        # each finding's first occurrence's request ids: its timeline is taken again later (fill_timelines)
        self.first_ids: dict[tuple[str, ...], list[str]] = {}

    def add(self, occurrence: Occurrence, ship: bool = False,
            timeline: Callable[[list[str]], list[list]] | None = None) -> Finding:
        """Count the occurrence in its finding; a new finding's first occurrence gets its timeline
        from `timeline(request_ids)` (this process's RequestIndex.timeline)."""
        key = occurrence.key()
        finding = self.by_key.get(key)
        if finding is None:
            finding = self.by_key[key] = Finding(key[0], list(key), _title(key))
            self.first_ids[key] = list(occurrence.request_ids)
            if timeline is not None and occurrence.request_ids and not occurrence.timeline:
                occurrence.timeline = timeline(occurrence.request_ids)
        finding.add(occurrence)
        if ship and len(self.unshipped) < SHIPPED_PER_REPORT:
            self.unshipped.append(asdict(occurrence))
        elif ship:
            self.dropped += 1
        return finding

    def fill_timelines(self, timeline: Callable[[list[str]], list[list]], within: float = 120.0,
                       again_within: float = 10.0) -> None:
        """Findings still without a timeline whose actions may have arrived since (the master sees a
        logged error before the worker's report brings the action's calls), up to `within` seconds
        after they were first seen; and the others' timelines taken again up to `again_within`
        seconds: one taken at the 5xx lacks the request it raced when that one was answered after
        it (and the calls just after). Each take scans the request index: this runs at every
        worker report, so only young findings are taken again (the end of the run takes them all)."""
        now = time.time()
        for key, finding in self.by_key.items():
            if now - finding.first > within:
                continue
            if not finding.timeline and finding.request_ids:
                finding.timeline = timeline(finding.request_ids)
            elif self.first_ids.get(key) and now - finding.first <= again_within:
                finding.timeline = max(finding.timeline, timeline(self.first_ids[key]), key=len)

    def shipped(self) -> dict:
        """What a worker's report carries (then forgotten here)."""
        data = {"occurrences": self.unshipped, "dropped": self.dropped}
        self.unshipped, self.dropped = [], 0
        return data

    def merge(self, data: dict) -> None:
        for raw in data.get("occurrences") or []:
            known = {name: raw[name] for name in Occurrence.__dataclass_fields__ if name in raw}
            self.add(Occurrence(**known))
        self.dropped += int(data.get("dropped") or 0)

    def ranked(self) -> list[Finding]:
        """Invariants first (the cloud's state is wrong), then 5xx, then logs; most frequent first."""
        order = {"invariant": 0, "5xx": 1, "log": 2}
        return sorted(self.by_key.values(), key=lambda f: (order.get(f.kind, 3), -f.count, f.first))

    def summary_lines(self, most: int = 20) -> list[str]:
        ranked = self.ranked()
        if not ranked:
            return []
        lines = [f"Findings: {len(ranked)} ({sum(finding.count for finding in ranked)} occurrences)"]
        lines += [finding.line() for finding in ranked[:most]]
        if len(ranked) > most:
            lines.append(f"... and {len(ranked) - most} more (--summary-json has them all)")
        return lines

    def rows(self) -> list[dict]:
        """The web UI's table: one row per finding."""
        return [{"kind": f.kind, "title": f.title, "count": f.count,
                 "first": time.strftime("%H:%M:%S", time.localtime(f.first)),
                 "last": time.strftime("%H:%M:%S", time.localtime(f.last)),
                 "actions": ", ".join(f"{name} x{count}" for name, count in Counter(f.actions).most_common(5)),
                 "users": ", ".join(f.users[:5]), "hosts": ", ".join(f.hosts[:5]),
                 "request_ids": "\n".join(f.request_ids[:5])} for f in self.ranked()]

    def reset(self) -> None:
        self.by_key.clear()
        self.first_ids.clear()
        self.unshipped, self.dropped = [], 0


def occurrence_of(request_type: str, name: str, exception, context: dict | None, index=None) -> Occurrence | None:
    """The occurrence a Locust request event reports, None when it reports none: a failed API
    call answered 500 or more (its context has the status), a LOG record, an INVARIANT."""
    if exception is None:
        return None
    context = context or {}
    if request_type == "LOG":
        lines = [str(line) for line in context.get("lines") or []]
        ids = list(dict.fromkeys(REQUEST_ID.findall("\n".join(lines[:200]))))
        global_id = context.get("global_request_id")
        return Occurrence("log", str(name), str(exception).splitlines()[0] if str(exception) else "",
                          request_ids=([global_id] if global_id else []) + [i for i in ids if i != global_id],
                          action=str(context.get("action") or ""), user=str(context.get("user") or ""),
                          host=str(context.get("host") or ""), lines=lines[:LINES_KEPT],
                          fault=str(context.get("fault") or ""))
    if request_type == "INVARIANT":
        ids = [str(i) for i in context.get("request_ids") or []]
        record = next(filter(None, (index.lookup(i) for i in ids)), None) if index is not None else None
        return Occurrence("invariant", str(name), str(exception), request_ids=ids,
                          action=record.action if record else "", user=record.who if record else "")
    status = context.get("status")
    if isinstance(status, int) and status >= 500:
        ids = [i for i in (context.get("global_request_id"), context.get("request_id")) if i]
        return Occurrence("5xx", str(name), str(context.get("message") or exception), status=status,
                          request_ids=ids, action=str(context.get("action") or ""), user=str(context.get("user") or ""))
    return None


# -- a report per finding (--findings-dir) ------------------------------------------------------
EXPECTED = {
    "5xx": "an answer of 2xx, or a 4xx that says why the request cannot be done now (409 for a "
           "conflicting state): a 5xx is a bug of the service, whatever the client raced it with",
    "log": "no ERROR or TRACE in {service}'s log for requests the API accepted",
    "invariant": "the invariant {name} holds once the cloud has settled (novastress-locust's README lists "
                 "what each invariant checks)",
}
_SECRET_SETTING = re.compile(r"(?i)((?:password|passwd|token|secret|private[_ -]key)[\"']?\s*[:=]\s*)[\"']?[^\s\"',;}]+")
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S)


def redact(text: str, secrets: list[str], settings: bool = True) -> str:
    """Known secrets, private keys and (`settings`) `password=...`-like values replaced by ***
    (a reproducer's own code names its settings: only the secrets go)."""
    for secret in sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, "***")
    text = _PRIVATE_KEY.sub("***", text)
    return _SECRET_SETTING.sub(r"\1***", text) if settings else text


def report_markdown(finding: Finding, run: dict) -> str:
    """The finding as a bug report: title, cloud, expected and happened, timeline, tracebacks.
    `run`: run_id, target, profile (CloudProfile.as_dict), violations (report.violation_rows)."""
    when = lambda t: time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))  # noqa: E731
    actions = ", ".join(f"{name} ({count} times)" for name, count in Counter(finding.actions).most_common())
    service = finding.key[1] if len(finding.key) > 1 else ""
    lines = [f"# {finding.title}", "",
             f"Found by a novastress-locust stress run ({run.get('run_id')}) against {run.get('target') or 'a cloud'}: "
             f"{finding.count} occurrence{'s' if finding.count != 1 else ''} between {when(finding.first)} and "
             f"{when(finding.last)}{' while ' + actions + ' ran concurrently' if actions else ''}.", ""]
    profile = run.get("profile") or {}
    lines += ["## Environment", ""]
    microversions = profile.get("compute_microversions")
    if microversions:
        lines.append(f"* Compute API microversions {microversions[0]} to {microversions[1]}")
    if profile.get("services"):
        lines.append("* Services: " + ", ".join(f"{kind} {version}".strip()
                                                for kind, version in sorted(profile["services"].items())))
    if profile.get("compute_hosts") is not None:
        lines.append(f"* {profile['compute_hosts']} nova-compute host(s) up; flavor {profile.get('flavor') or '?'}, "
                     f"image {profile.get('image') or '?'}, network {profile.get('network') or 'none'}")
    if not profile:
        lines.append("* Not profiled (the run could not read the cloud's versions)")
    lines += ["", "## Expected", "", EXPECTED.get(finding.kind, "").format(service=service, name=service) + ".",
              "", "## What happened", "", "```", finding.example, "```", ""]
    lines += [f"{label}: {', '.join(names)}." for label, names in (("Users", finding.users), ("Hosts", finding.hosts))
              if names]
    if finding.faults:
        lines.append(f"During the injected fault(s) {', '.join(finding.faults)}: a consequence of the fault "
                     f"may be expected; say so in the report.")
    lines += ["", "## Timeline of the first occurrence", ""]
    if finding.timeline:
        start = finding.timeline[0][0]
        lines += ["| sent ms | took ms | client | action | request | status | request id |",
                  "| ---: | ---: | --- | --- | --- | --- | --- |"]
        for call in finding.timeline:
            at, _method, name, status, request_id, client, what, action, _user, took = (call + [""] * 10)[:10]
            name += f" ({what})" if what and not name.endswith(what) else ""
            lines.append(f"| {round((at - start) * 1000)} | {took} | {client} | {action} | {name} | "
                         f"{status if status is not None else 'no answer'} | {request_id or ''} |")
    else:
        lines.append("Not held: the actions behind it were not recorded in this process (a long run keeps the "
                     "calls of its newest 10,000 actions).")
    if finding.lines:
        where = f" ({', '.join(finding.hosts)})" if finding.hosts else ""
        lines += ["", f"## The first record{where}", "", "```", *finding.lines[:30], "```"]
    violations = [row for row in run.get("violations") or [] if finding.kind == "invariant"
                  and row.get("kind") == service]
    if violations:
        lines += ["", "## End state the invariant checks saw", ""]
        lines += [f"* {row['subject']}: {row['detail']}" for row in violations[:10]]
    if finding.request_ids:
        lines += ["", "## Request ids", "", " ".join(finding.request_ids), ""]
    return "\n".join(lines).rstrip() + "\n"


def write_reports(directory: str, findings: Findings, run: dict, secrets: list[str]) -> list[str]:
    """One folder per finding under `directory`, each with its report.md; the paths written."""
    from pathlib import Path
    written: list[str] = []
    root = Path(directory)
    used: set[str] = set()
    for finding in findings.ranked():
        name = finding.id
        while name in used:                       # two keys cut to one slug
            name = f"{finding.id}-{len(used)}"
        used.add(name)
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "report.md"
        path.write_text(redact(report_markdown(finding, run), secrets), encoding="utf-8")
        written.append(str(path))
        (folder / "finding.json").write_text(redact(json.dumps(finding.as_dict(), indent=1), secrets) + "\n",
                                             encoding="utf-8")
        plan = replay_plan(finding, run)
        if plan is not None:
            path = folder / "repro.py"
            path.write_text(redact(script(plan), secrets, settings=False), encoding="utf-8")
            path.chmod(0o755)
            written.append(str(path))
    return written


# -- novastress-findings ----------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """`novastress-findings DIR` lists a run's findings (--findings-dir), `DIR show ID` prints one's
    report, `DIR repro ID [ARGS]` runs its reproducer with ARGS (e.g. --times 20)."""
    from pathlib import Path
    parser = argparse.ArgumentParser(prog="novastress-findings", description=main.__doc__)
    parser.add_argument("directory", help="a run's --findings-dir")
    parser.add_argument("command", nargs="?", choices=("list", "show", "repro"), default="list")
    parser.add_argument("finding", nargs="?", help="a finding's id (its folder's name; a unique prefix will do)")
    args, rest = parser.parse_known_args(argv)
    root = Path(args.directory)
    folders = sorted(path.parent for path in root.glob("*/report.md"))
    if not root.is_dir() or not folders:
        print(f"novastress-findings: no findings in {root} (a run's --findings-dir)", file=sys.stderr)
        return 2
    if args.command == "list":
        for folder in folders:
            data = json.loads((folder / "finding.json").read_text()) if (folder / "finding.json").exists() else {}
            repro = "repro" if (folder / "repro.py").exists() else "-"
            print(f"{folder.name}  {data.get('count', '?')}x  {repro:5}  {data.get('title', '')}")
        return 0
    chosen = [folder for folder in folders if folder.name == args.finding] or \
        [folder for folder in folders if args.finding and folder.name.startswith(args.finding)]
    if len(chosen) != 1:
        print(f"novastress-findings: {args.finding or 'a finding id'!s} names {len(chosen)} findings of {root}; "
              f"`novastress-findings {root}` lists them", file=sys.stderr)
        return 2
    folder = chosen[0]
    if args.command == "show":
        print((folder / "report.md").read_text(), end="")
        return 0
    if not (folder / "repro.py").exists():
        print(f"novastress-findings: {folder.name} has no reproducer (its timeline holds no server change to "
              f"replay); its report.md lists the request ids", file=sys.stderr)
        return 2
    return subprocess.call([sys.executable, str(folder / "repro.py"), *rest], env=dict(os.environ))


if __name__ == "__main__":
    sys.exit(main())
