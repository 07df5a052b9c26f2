"""Which action sent which request: the index the log watcher uses to pin a trace on an action;
and the one timer of what novastress reports as a request of its own.

    index = request_index(environment)       # state.request_index: the run's one index
    record = index.lookup("req-0f4c...")      # global id, any local id, or a resource id
    print(record.action, record.user, record.global_request_id)
    with timed(environment.events, "ATOMIC", "boot_server"):
        ...                                   # one request event when the block ends
"""
from __future__ import annotations

import re
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, Callable


CALLS_PER_ACTION = 100
# a timeline cut to its `most` calls keeps those nearest its anchor; a call after it counts as this
# many times farther than one before (what led to it matters more than what followed)
AFTER_WEIGHT = 4.0


@dataclass(slots=True)
class ActionRecord:
    action: str                 # e.g. "server_create_destroy"
    user: str                   # e.g. "ServerCreateDestroy-3"
    worker: str                 # runner client id or "local"
    global_request_id: str      # the one X-OpenStack-Request-ID sent on all the action's calls
    request_ids: list[str] = field(default_factory=list)   # every x-openstack-request-id seen
    resource_ids: list[str] = field(default_factory=list)  # server/volume/... ids it touched
    started: float = field(default_factory=time.time)
    ended: float | None = None
    failed: bool = False
    error: str | None = None
    # logged errors that are Nova's documented answer to this action, not a finding: a pattern
    # (searched in the record's text) -> why Nova logs it (a burst racing for hosts, say)
    expected_log: dict[str, str] = field(default_factory=dict)
    # its API calls, for a finding's timeline: (time sent, method, name, status, request id, client,
    # server action ("reboot"; "" for others), ms to the answer) (the first CALLS_PER_ACTION;
    # dropped once the record is older than RequestIndex.calls_kept); tuples of plain values, which
    # the garbage collector stops tracking: a run keeps thousands of records
    calls: list[tuple] = field(default_factory=list)

    def called(self, method: str, name: str, status: int | None, request_id: str | None, client: str,
               what: str = "", elapsed: float = 0.0) -> None:
        """One call answered (or failed) after `elapsed` ms: kept with the time it was sent, which is
        what a reproducer replays (a loaded cloud may answer the first-sent call last)."""
        if len(self.calls) < CALLS_PER_ACTION:
            self.calls.append((time.time() - elapsed / 1000, method, name, status, request_id, client, what,
                               round(elapsed)))

    def expects(self, text: str) -> str | None:
        """Why a logged error with this text is expected of this action; None when it is not."""
        return next((why for pattern, why in self.expected_log.items() if re.search(pattern, text)), None)

    @property
    def who(self) -> str:
        """The user as the summary names it: `<worker>/<user>` when a worker ran the action."""
        return self.user if self.worker == "local" else f"{self.worker.rsplit('_', 1)[-1][:8]}/{self.user}"

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ActionRecord":
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})


class RequestIndex:
    """Recent action records, found by global request id, local request id or resource id.

    Bounded: the oldest records are forgotten past `capacity`, so a long run does not grow
    without limit. Records are indexed when added and again when `touch()`ed, because an
    action learns its request ids as it runs.
    """

    def __init__(self, capacity: int = 50_000, calls_kept: int = 10_000) -> None:
        self.capacity = capacity
        self.calls_kept = calls_kept       # the newest records keep their calls (memory bound)
        self._records: deque[ActionRecord] = deque()
        self._by_id: dict[str, ActionRecord] = {}
        self._lock = threading.Lock()

    def add(self, record: ActionRecord) -> None:
        with self._lock:
            self._records.append(record)
            self._index(record)
            if len(self._records) > self.calls_kept:
                self._records[-self.calls_kept - 1].calls = []
            while len(self._records) > self.capacity:
                old = self._records.popleft()
                for key in self._keys(old):
                    if self._by_id.get(key) is old:
                        del self._by_id[key]

    def touch(self, record: ActionRecord) -> None:
        """Index ids the record learned since it was added."""
        with self._lock:
            self._index(record)

    def note(self, record: ActionRecord, key: str) -> None:
        """Index one id the record just learned (cheaper than touch() on every response)."""
        with self._lock:
            self._by_id[key] = record

    def lookup(self, request_id: str) -> ActionRecord | None:
        with self._lock:
            return self._by_id.get(request_id)

    def __len__(self) -> int:
        return len(self._records)

    def timeline(self, request_ids: list[str], window: float = 30.0, most: int = 200) -> list[list]:
        """The API calls that led to what these request ids name: the calls of their actions and
        of every action that touched the same resources within `window` seconds (a racing peer, a
        delete), oldest sent first, each [time sent, method, name, status, request id, client, server
        action, action, user, ms to the answer]. Past `most` calls, those nearest the last call these
        ids name are kept (the ones before it first): a storm action's record may hold hundreds of
        refused calls ahead of the DELETE that mattered."""
        with self._lock:
            records = {id(r): r for r in (self._by_id.get(i) for i in request_ids) if r is not None}
            if not records:
                return []
            resources = {rid for r in records.values() for rid in r.resource_ids}
            start = min(r.started for r in records.values()) - window
            end = max((r.ended or time.time()) for r in records.values()) + window
            for record in self._records:
                if id(record) not in records and resources.intersection(record.resource_ids) \
                        and start <= record.started <= end:
                    records[id(record)] = record
            calls = [[*call[:7], record.action, record.who, *call[7:]]
                     for record in records.values() for call in record.calls]
        calls.sort(key=lambda call: call[0])
        if len(calls) <= most:
            return calls
        wanted = set(request_ids)
        named = [call[0] for call in calls if call[4] in wanted]
        anchor = named[-1] if named else calls[-1][0]
        nearest = sorted(calls, key=lambda call: anchor - call[0] if call[0] <= anchor else AFTER_WEIGHT * (call[0] - anchor))
        return sorted(nearest[:most], key=lambda call: call[0])

    @staticmethod
    def _keys(record: ActionRecord) -> list[str]:
        return [record.global_request_id, *record.request_ids, *record.resource_ids]

    def _index(self, record: ActionRecord) -> None:
        for key in self._keys(record):
            if key:
                self._by_id[key] = record


class Step:
    """A timed block; a wait that ends it tells how long after the awaited change it woke."""

    __slots__ = ("late",)

    def __init__(self) -> None:
        self.late = 0.0

    def woke_late(self, seconds: float) -> None:
        self.late = seconds


class timed(Step):
    """Time the block as one Locust request of its own (an atomic step, a failed setup, a token
    request): fired when the block ends, with its exception (`describe`d: generalized, say) when
    it raised one, which goes on up. `counts(exception or None)` says whether the outcome is
    reported at all; a stop (GreenletExit, not an Exception) never is. Locust's own
    EventHook.measure() would swallow the exception and report a stopped step as a success.
    A block that ends in a server wait ends when the server changed: the wait's `step.late`
    (the poll lag, waiter.py) is not the block's time. A class with slots, not a generator:
    thousands of users wait inside one at a time."""

    __slots__ = ("events", "request_type", "name", "describe", "counts", "started")

    def __init__(self, events, request_type: str, name: str, *,
                 describe: Callable[[Exception], Any] | None = None,
                 counts: Callable[[Exception | None], bool] | None = None) -> None:
        super().__init__()
        self.events, self.request_type, self.name = events, request_type, name
        self.describe, self.counts = describe, counts

    def __enter__(self) -> "timed":
        self.started = time.perf_counter()
        return self

    def __exit__(self, kind, error, _traceback) -> None:
        if kind is not None and not issubclass(kind, Exception):
            return
        if self.counts is None or self.counts(error):
            elapsed = time.perf_counter() - self.started - (self.late if error is None else 0.0)
            described = error if error is None or self.describe is None else self.describe(error)
            self.events.request.fire(request_type=self.request_type, name=self.name, response_length=0,
                                     context={}, response_time=max(0.0, elapsed) * 1000, exception=described)
