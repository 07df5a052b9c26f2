"""Which records are errors.

    matcher = Matcher.build()                                   # oslo level ERROR/TRACE/CRITICAL
    matcher = Matcher.build(["No valid host"], ignore=["memcache_pool"])   # egrep over every line
    matcher.matches(record)

By default Tempest's `ERROR|TRACE` is matched against the *level field* of each
oslo.log line of a record (the first line and every exception-prefixed traceback
line), plus CRITICAL: an INFO line saying "vm_state ERROR" or a WARNING
"Setting instance to ERROR state." is not an error, a warning logged with a
traceback is. Lines that are not in oslo's format (other logs in the glob) are
matched whole, like egrep. A pattern given by the user is matched against every
line whole, like `egrep PATTERN`. A record with a line matching an ignore
pattern is never an error.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .records import HEAD, LogRecord

# Tempest's `egrep "ERROR|TRACE"` (TRACE is how older oslo.log prefixed traceback lines)
DEFAULT_PATTERN = "ERROR|TRACE"
DEFAULT_LEVELS = re.compile(r"^(?:ERROR|TRACE|CRITICAL)$")


class PatternError(ValueError):
    """A --log-pattern / --log-ignore value is not a valid regular expression."""


def compile_patterns(patterns: list[str] | tuple[str, ...] | str | None, option: str) -> list[re.Pattern]:
    if patterns is None:
        return []
    if isinstance(patterns, str):
        patterns = [patterns]
    compiled = []
    for pattern in patterns:
        if not pattern:
            continue
        try:
            compiled.append(re.compile(pattern))
        except re.error as error:
            raise PatternError(f"{option}: {pattern!r} is not a valid regular expression ({error}); "
                               f"fix the pattern (Python re syntax, like egrep)") from None
    return compiled


@dataclass
class Matcher:
    patterns: list[re.Pattern] = field(default_factory=list)    # empty: the default, on levels
    ignore: list[re.Pattern] = field(default_factory=list)

    @classmethod
    def build(cls, patterns: list[str] | str | None = None, ignore: list[str] | str | None = None) -> "Matcher":
        return cls(patterns=compile_patterns(patterns, "--log-pattern"),
                   ignore=compile_patterns(ignore, "--log-ignore"))

    def matches(self, record: LogRecord) -> bool:
        if self.patterns:
            hit = any(p.search(line) for line in record.lines for p in self.patterns)
        elif record.level:
            # an oslo record: the level of its first line and of its exception-prefixed lines
            hit = any(head is not None and DEFAULT_LEVELS.match(head["level"]) is not None
                      for head in map(HEAD.match, record.lines))
        else:
            # not oslo's format (another log in the glob): Tempest's egrep on the line
            hit = any(re.search(DEFAULT_PATTERN, line) for line in record.lines)
        if not hit:
            return False
        return not any(p.search(line) for line in record.lines for p in self.ignore)
