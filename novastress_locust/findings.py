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

Each finding keeps its count, first and last time, the request ids (the first REQUEST_IDS_KEPT),
the actions and users involved, the hosts, and its first occurrence's text and lines. Workers
record their own 5xx and invariant occurrences and ship them with their reports (report.py); the
master's log watch adds the log ones. The summary, `--summary-json` and the web UI's Findings tab
show them.
"""
from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field

REQUEST_IDS_KEPT = 50
USERS_KEPT = 20
LINES_KEPT = 40
SHIPPED_PER_REPORT = 500      # occurrences a worker ships per report; more are counted, not detailed

_UUID = r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
REQUEST_ID = re.compile(rf"\breq-{_UUID}\b")
_NORMALISE = (
    (re.compile(rf"\breq-{_UUID}\b"), "{request_id}"),
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

    def key(self) -> tuple[str, ...]:
        if self.kind == "5xx":
            service, _, route = self.name.partition(" ")
            cause = _NOVA_CLASS.search(self.text)
            message = self.text.split(f"-> {self.status} ", 1)[-1] if self.status else self.text
            return ("5xx", service, route, str(self.status), cause.group(1) if cause else normalise(message, 100))
        if self.kind == "log":
            service = re.sub(r"\.log$", "", self.name.rpartition("/")[2].rpartition(":")[2])
            head = next((_LOGGER.match(line) for line in self.lines if _LOGGER.match(line)), None)
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

    def line(self) -> str:
        """One line of the summary."""
        when = f"{time.strftime('%H:%M:%S', time.localtime(self.first))}"
        if self.count > 1:
            when += f"-{time.strftime('%H:%M:%S', time.localtime(self.last))}"
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

    def add(self, occurrence: Occurrence, ship: bool = False) -> Finding:
        key = occurrence.key()
        finding = self.by_key.get(key)
        if finding is None:
            finding = self.by_key[key] = Finding(key[0], list(key), _title(key))
        finding.add(occurrence)
        if ship:
            if len(self.unshipped) < SHIPPED_PER_REPORT:
                self.unshipped.append(asdict(occurrence))
            else:
                self.dropped += 1
        return finding

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
        occurrences = sum(finding.count for finding in ranked)
        lines = [f"Findings: {len(ranked)} ({occurrences} occurrences)"]
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
                          request_ids=ids, action=str(context.get("action") or ""),
                          user=str(context.get("user") or ""))
    return None
