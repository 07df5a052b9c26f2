"""Group oslo.log lines into records: one record per log call, tracebacks included.

    grouper = RecordGrouper()
    for record in grouper.feed(text):      # complete records only
        print(record.level, record.logger, len(record.lines))
    tail = grouper.flush()                 # the last record, once nothing more is coming

A record starts at `<ts> <pid> <LEVEL> <logger> [` followed by a context bracket
(`[None req-…`, `[req-…`, `[-]`). Lines without a timestamp (multi-line
messages, remote tracebacks) and lines with the same `ts pid LEVEL logger` but no
context bracket (oslo's `logging_exception_prefix` on every traceback line, whose
level is always ERROR) belong to the record before them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

HEAD = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) (?P<pid>\d+) (?P<level>[A-Z]+) (?P<logger>\S+) ")
CONTEXT = re.compile(r"\[(?:None req-|req-|-\])")
BRACKET = re.compile(r"^\[(?P<inner>[^\]]*)\] ?")
INSTANCE = re.compile(r"\[instance: (?P<uuid>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\]")
REQUEST_ID = re.compile(r"\breq-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
# Keystone user/project ids in the bracket are 32-hex without dashes: never resource ids
SUMMARY_LIMIT = 240


@dataclass
class LogRecord:
    """One log call: its first line and every line that belongs to it."""

    lines: list[str]
    timestamp: str = ""
    pid: str = ""
    level: str = ""
    logger: str = ""
    global_request_id: str | None = None
    request_id: str | None = None
    instance: str | None = None
    message: str = ""

    @classmethod
    def from_lines(cls, lines: list[str]) -> "LogRecord":
        record = cls(lines=lines)
        head = HEAD.match(lines[0]) if lines else None
        if head is None:
            record.message = lines[0] if lines else ""
            return record
        record.timestamp, record.pid = head["ts"], head["pid"]
        record.level, record.logger = head["level"], head["logger"]
        rest = lines[0][head.end():]
        bracket = BRACKET.match(rest)
        if bracket and CONTEXT.match(rest):
            words = bracket["inner"].split()
            if words and words[0] not in ("-", "None"):
                record.global_request_id = words[0]
            if len(words) > 1 and words[1] != "-":
                record.request_id = words[1]
            rest = rest[bracket.end():]
        instance = INSTANCE.match(rest)
        if instance:
            record.instance = instance["uuid"]
        record.message = rest
        return record

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def request_ids(self) -> list[str]:
        """Ids to look the record up by, most telling first: global, local, other req- ids,
        the instance, then any other uuid the lines name (servers, volumes, ports…)."""
        found: list[str] = []

        def add(value: str | None) -> None:
            if value and value not in found:
                found.append(value)
        add(self.global_request_id)
        add(self.request_id)
        text = self.text
        for match in REQUEST_ID.finditer(text):
            add(match.group(0))
        add(self.instance)
        for match in UUID.finditer(text):
            start = match.start()
            if text[max(0, start - 4):start] != "req-":
                add(match.group(0))
        return found

    def summary(self, limit: int = SUMMARY_LIMIT) -> str:
        """One line: level, logger and the message of the first line (no timestamp, pid or bracket)."""
        if self.level:
            line = f"{self.level} {self.logger}: {self.message}".rstrip()
        else:
            line = self.message.rstrip()
        return line if len(line) <= limit else line[:limit - 1] + "…"


@dataclass
class RecordGrouper:
    """Turns a stream of text (any chunking) into records; keeps the last one until it is complete."""

    _partial: str = ""                       # bytes after the last newline
    _lines: list[str] = field(default_factory=list)
    _key: tuple[str, str, str, str] | None = None

    def feed(self, text: str) -> list["LogRecord"]:
        """Add text; return the records that the new text proved complete."""
        done: list[LogRecord] = []
        data = self._partial + text
        *lines, self._partial = data.split("\n")
        for line in lines:
            if line.endswith("\r"):
                line = line[:-1]
            record = self._add_line(line)
            if record is not None:
                done.append(record)
        return done

    def _add_line(self, line: str) -> "LogRecord | None":
        head = HEAD.match(line)
        if head is not None:
            key = (head["ts"], head["pid"], head["level"], head["logger"])
            starts = CONTEXT.match(line, head.end()) is not None or not self._continues(key)
        else:
            # continuation lines belong to an oslo record; in a file of another format each
            # line is its own record
            key, starts = None, not self._lines or self._key is None
        if not starts:
            self._lines.append(line)
            return None
        finished = self._take()
        self._lines = [line]
        self._key = key
        return finished

    def _continues(self, key: tuple[str, str, str, str]) -> bool:
        """Same ts, pid and logger as the record's first line, and its level or oslo's
        exception prefix level (a warning logged with a traceback gets ERROR lines)."""
        if not self._lines or self._key is None:
            return False
        ts, pid, level, name = self._key
        return key[0] == ts and key[1] == pid and key[3] == name and key[2] in (level, "ERROR", "TRACE")

    def _take(self) -> "LogRecord | None":
        if not self._lines:
            return None
        record = LogRecord.from_lines(self._lines)
        self._lines, self._key = [], None
        return record

    @property
    def pending(self) -> bool:
        return bool(self._lines)

    def flush(self) -> "LogRecord | None":
        """The record held back, as is (an unterminated last line stays buffered)."""
        return self._take()

    def reset(self) -> None:
        """Forget everything (the file was truncated or replaced)."""
        self._partial, self._lines, self._key = "", [], None


def parse_records(text: str) -> list[LogRecord]:
    """Every record of a whole text (tests, one-off reads)."""
    grouper = RecordGrouper()
    records = grouper.feed(text if text.endswith("\n") or not text else text + "\n")
    tail = grouper.flush()
    return records + ([tail] if tail else [])
