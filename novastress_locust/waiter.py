"""Waiting for servers to reach a status: batched (one list serves everyone) or one GET each.

    waiter = BatchedServerWaiter(compute, interval=1.0)
    server = waiter.wait(server_id, "ns-1a2b-3-server", "ACTIVE", timeout=300)   # or WaitError
    waiter.wait(server_id, "ns-1a2b-3-server", "DELETED", timeout=120)

The batched waiter keeps one greenlet per process and credential: every interval it sends
one `GET /servers/detail?changes-since=<t>` and wakes every waiting user whose server
changed, instead of one `GET /servers/{id}` per waiting server. Nova lists deleted servers
(status DELETED) under changes-since, so deletions are seen in the same list; a server the
list has not shown for a long while gets one direct GET, in case a cloud purges deleted rows.

When the change happened: between the last read that did not show it and the first that did,
narrowed by the server's `updated` stamp (the cloud's clock, whole seconds) once the cloud's
clock is known from the Date headers. A wait given a `step` (requestlog.Step) tells it how long
after that moment the user woke, so an atomic step ending in a wait ends when the server changed,
not a poll later.
"""
from __future__ import annotations

import email.utils
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

import gevent
from gevent.event import AsyncResult

LOG = logging.getLogger("novastress")

ACTIVE = "ACTIVE"
DELETED = "DELETED"
# Nova compares changes-since with updated_at, stored by the cloud's clock to the second (the
# stamp we send is floored to the second too). With the cloud's clock known (below), a list
# looks back this far before the previous list's start: for a change stamped by another node
# whose clock is a little behind, or committed a little after the previous list read its rows
SINCE_MARGIN = 1.0
# ... and this far before the cloud's clock is known (the first list): our clock against its
CLOCK_UNKNOWN_MARGIN = 2.0
# the cloud's clock from the Date headers of the last responses: each one bounds the offset from
# both sides (a whole second, stamped between our send and our receipt); the best bounds of the
# recent ones pin it within a few tens of ms once the reads have fallen at varied points of the
# cloud's second; recent only, so a clock step is forgotten soon
OFFSET_SAMPLES = 16
# the batched poll's schedule slips by this share of a second each list (at most its interval),
# so its reads fall at every point of the cloud's second and the clock gets pinned (a list is
# a little rarer, never more frequent)
PHASE_SLIP = 1 / 16
MAX_PAGES = 50
# pages of servers a list asks for once a whole list answered 5xx: Nova looks up the ports of a
# page's servers in one Neutron GET whose URL grows with every server, and a real Neutron (its
# 4,094-byte request line) answers "URI Too Long" past about 80, which Nova turns into a 500 of
# the whole list; then smaller pages, down to the last
PAGE_LIMITS = (50, 10)
# users woken per turn of the event loop after a list: a list that settles a thousand waits
# at once puts a thousand users in the run queue together, and each of them (and every user
# just finishing a lifecycle) waits behind all the others; a few at a time, the next few once
# these have sent their next call, keeps the queue short (no timer: paced by the work itself)
WAKE_BATCH = 100


class WaitError(Exception):
    """A server did not reach the status; str() says what happened in one line."""


class CloudClock:
    """The cloud's clock minus ours, from the Date headers of its responses."""

    def __init__(self) -> None:
        self._bounds: deque[tuple[float, float]] = deque(maxlen=OFFSET_SAMPLES)
        self._date: tuple[str, float] | None = None     # the last Date header read, and its time

    def learn(self, response, sent: float, received: float) -> None:
        date = response.headers.get("Date")
        if not date:
            return
        if self._date is not None and self._date[0] == date:
            stamp = self._date[1]     # many answers share a second: parsed once
        else:
            try:
                stamp = email.utils.parsedate_to_datetime(date).timestamp()
            except (TypeError, ValueError):
                return
            self._date = (date, stamp)
        # the cloud read its clock, floored it to the second, between our send and our receipt
        low, high = stamp - received, stamp + 1 - sent
        if self._bounds and (low > self.high or high < self.low):
            self._bounds.clear()      # the clock stepped: what came before no longer holds
        self._bounds.append((low, high))

    @property
    def known(self) -> bool:
        return bool(self._bounds)

    @property
    def low(self) -> float:
        """A safe, slightly low estimate (the changes-since look-back wants never to be late)."""
        return max(low for low, _ in self._bounds)

    @property
    def high(self) -> float:
        return min(high for _, high in self._bounds)


def changed_at(before: float, after: float, server: dict | None, clock: CloudClock) -> float:
    """When (our clock) the server most likely changed: in (before, after], within the second its
    `updated` stamp names when the cloud's clock is known; the middle of what is left."""
    low, high = before, after
    updated = _stamp(server.get("updated")) if server else None
    if updated is not None and clock.known:
        low, high = max(low, updated - clock.high), min(high, updated + 1 - clock.low)
        if low > high:                # the stamp disagrees with the reads (another node's clock)
            low, high = before, after
    return (low + high) / 2


def _stamp(text: Any) -> float | None:
    """Nova's `2026-12-04T20:06:13Z` as a time (UTC when it names no zone); None when it is not one."""
    try:
        # Python 3.10's fromisoformat does not read a trailing Z
        stamp = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)).timestamp()


class ComputeCalls(Protocol):
    def get(self, path: str, *, params: dict | None = None, expect: tuple[int, ...] = (200,),
            name: str | None = None) -> Any: ...


@dataclass
class _Wait:
    server_id: str
    name: str
    target: str
    deadline: float
    timeout: float
    since: float                      # local time before the change we wait for could happen
    result: AsyncResult = field(default_factory=AsyncResult)
    last: dict | None = None          # the server as last seen
    last_seen: float = field(default_factory=time.monotonic)
    deleting_seen: bool = False
    # was the server in ERROR before the wait began? None: not known
    was_error: bool | None = None
    # a list that started after this wait was added has covered its look-back: from then on
    # the waiter's watermark is enough (the look-back of long waits must not grow every list)
    covered: bool = False
    # our clock when the last read that did not finish the wait was sent (the change came later)
    before: float = 0.0
    changed: float | None = None      # our clock when the server most likely changed
    step: Any = None                  # the atomic step to tell how late the user woke (requestlog.Step)

    def __post_init__(self) -> None:
        if self.last is not None and "status" in self.last:
            self.was_error = self.last["status"] == "ERROR"
        self.before = self.before or self.since

    def observe(self, server: dict | None, sent: float, received: float, clock: CloudClock) -> bool:
        """A read of the server (None: 404), sent and received at these times: is the wait over?"""
        self.last = server
        finished, error = verdict(self, server)
        if error:
            self.result.set_exception(WaitError(error))
        elif finished:
            self.changed = changed_at(self.before, received, server, clock)
            self.result.set(server)
        else:
            self.before = sent
        return bool(error or finished)

    def woke(self) -> None:
        """The user runs again: its step ends when the server changed, not now."""
        if self.step is not None and self.changed is not None:
            self.step.woke_late(max(0.0, time.time() - self.changed))


def describe(server: dict | None) -> str:
    """`BUILD (spawning)`, `ACTIVE (deleting)`, `ERROR`…"""
    if server is None:
        return "gone"
    task = server.get("OS-EXT-STS:task_state")
    return f"{server.get('status')} ({task})" if task else str(server.get("status"))


def verdict(wait: _Wait, server: dict | None) -> tuple[bool, str | None]:
    """(finished, error) for a wait given the server as seen now (None: 404)."""
    who = f"server {wait.name} ({wait.server_id})"
    status = None if server is None else server.get("status")
    if wait.target == DELETED:
        if server is None or status in (DELETED, "SOFT_DELETED"):
            return True, None
        if server.get("OS-EXT-STS:task_state") == "deleting":
            wait.deleting_seen = True
        elif status != "ERROR":
            if wait.was_error is None:
                wait.was_error = False
        elif wait.deleting_seen or wait.was_error is False or (wait.was_error is None
                                                                and _updated_since(server, wait.since)):
            # an ERROR from before the DELETE (a failed build, still within the changes-since
            # look-back, or known to the caller) is not a failed delete: only one after the delete
            # started is — a delete that raced a build can be lost that way without "deleting"
            # ever being seen
            return True, f"{who} went to ERROR while deleting{_fault(server)}"
        return False, None
    if status == wait.target:
        return True, None
    if status == "ERROR":
        return True, f"{who} went to ERROR{_fault(server)}"
    if server is None or status == DELETED:
        return True, f"{who} disappeared while waiting for {wait.target}"
    return False, None


def _updated_since(server: dict, since: float) -> bool:
    """Did the server change at or after `since`? (`updated` has whole seconds)"""
    updated = _stamp(server.get("updated"))
    return updated is not None and updated >= int(since)


def _fault(server: dict) -> str:
    fault = server.get("fault") or {}
    message = str(fault.get("message") or "").splitlines()
    return f": {message[0]}" if message and message[0] else ""


def _timed_out(wait: _Wait) -> str:
    state = describe(wait.last)
    if wait.last and wait.target == DELETED and wait.last.get("OS-EXT-STS:task_state"):
        state = str(wait.last["OS-EXT-STS:task_state"]).upper()
    return f"server {wait.name} ({wait.server_id}) still {state} after {wait.timeout:g} s"


class _Waiter:
    """What both waiters share: a wait's record and count, the cloud's clock."""

    def __init__(self, compute: ComputeCalls, interval: float) -> None:
        self.compute = compute
        self.interval = interval
        self.polls = 0            # what the cloud had to answer
        self.waits = 0            # waits that ended, however
        self.clock = CloudClock()

    def wait(self, server_id: str, name: str, target: str, timeout: float,
             initial: dict | None = None, since: float | None = None, step: Any = None) -> dict | None:
        wait = _Wait(server_id, name, target, time.monotonic() + timeout, timeout,
                     since or time.time(), last=initial, step=step)
        try:
            return self._until(wait)
        finally:
            self.waits += 1

    def stop(self) -> None:
        pass


class PerServerWaiter(_Waiter):
    """The classic way: each waiting user polls `GET /servers/{id}` every interval."""

    def _until(self, wait: _Wait) -> dict | None:
        while True:
            gevent.sleep(self.interval)
            self.polls += 1
            sent = time.time()
            response = self.compute.get(f"/servers/{wait.server_id}", expect=(200, 404))
            received = time.time()
            self.clock.learn(response, sent, received)
            if wait.observe(None if response.status_code == 404 else response.json()["server"],
                            sent, received, self.clock):
                wait.woke()
                return wait.result.get()
            if time.monotonic() >= wait.deadline:
                raise WaitError(_timed_out(wait))


class BatchedServerWaiter(_Waiter):
    """One changes-since list per interval for every server any user of a credential waits for."""

    def __init__(self, compute: ComputeCalls, interval: float, fallback_after: float | None = None) -> None:
        super().__init__(compute, interval)     # its polls: list calls and fallback GETs
        self.fallback_after = fallback_after if fallback_after is not None else max(10 * interval, 30.0)
        self.fallback_gets = 0
        self.listed = 0           # servers the lists returned (the same server once per list)
        self.list_seconds = 0.0   # wall time from a list's first request to its last page decoded
        self._waits: list[_Wait] = []
        self._watermark: float | None = None   # local time of the last poll's start
        self.phase_slip = PHASE_SLIP
        self.page_limit: int | None = None     # set once a list answered 5xx (PAGE_LIMITS)
        self._greenlet: gevent.Greenlet | None = None

    def _until(self, wait: _Wait) -> dict | None:
        self._waits.append(wait)
        if self._greenlet is None or self._greenlet.dead:
            self._greenlet = gevent.spawn(self._run)
        try:
            server = wait.result.get()
            wait.woke()
            return server
        finally:
            # a user killed while waiting must not leave its wait behind
            if wait in self._waits:
                self._waits.remove(wait)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=True)
            self._greenlet = None
        for wait in self._waits:
            wait.result.set_exception(WaitError(f"stopped while waiting for server {wait.name}"))
        self._waits.clear()

    # -- the polling greenlet ----------------------------------------------
    def _run(self) -> None:
        # one list every interval, not one interval after the last list ended: a list of
        # thousands of servers takes a while, and every waiting user would wait that longer
        due = time.monotonic() + self.interval
        while self._waits:
            gevent.sleep(max(0.0, due - time.monotonic()))
            if not self._waits:
                break
            due += self.interval + min(self.interval, 1.0) * self.phase_slip
            try:
                self._poll()
            except Exception as exc:  # a failed list is retried next interval; waits keep their deadlines
                self._expire(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            # a list slower than the interval: the next one after a short pause, not at once
            due = max(due, time.monotonic() + self.interval / 10)

    def _poll(self) -> None:
        waits = list(self._waits)
        started = time.time()
        fresh = [w.since for w in waits if not w.covered]
        since_local = min(fresh or [started]) if self._watermark is None else min([self._watermark, *fresh])
        offset = self.clock_offset
        since = since_local - CLOCK_UNKNOWN_MARGIN if offset is None else since_local + offset - SINCE_MARGIN
        servers = self._list_changed(since)
        received = time.time()
        self._watermark = started
        # a look-back computed without the cloud's clock is not trusted to have covered a wait:
        # the next list (the clock now known) looks back to its start again; a cloud that
        # sends no Date header leaves nothing to wait for
        if offset is not None or not self.clock.known:
            for wait in waits:
                wait.covered = True
        by_id: dict[str, dict] = {server["id"]: server for server in servers}
        now = time.monotonic()
        woken = 0
        for wait in waits:
            if wait.result.ready():
                continue
            server = by_id.get(wait.server_id)
            if server is not None:
                wait.last_seen = now
                if wait.observe(server, started, received, self.clock):
                    woken += 1
                    if woken % WAKE_BATCH == 0:
                        gevent.sleep(0)     # behind the users just woken: they run first
            elif now - wait.last_seen >= self.fallback_after:
                self._fallback(wait)
            else:
                wait.before = started   # not listed: unchanged since the look-back when the list began
        self._expire()

    def _list_changed(self, since: float) -> list[dict]:
        stamp = datetime.fromtimestamp(since, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        params: dict[str, str] = {"changes-since": stamp}
        servers: list[dict] = []
        started = time.monotonic()
        for _ in range(MAX_PAGES):
            if self.page_limit:
                params["limit"] = str(self.page_limit)
            self.polls += 1
            sent = time.time()
            try:
                response = self.compute.get("/servers/detail", params=params,
                                            name="compute GET /servers/detail?changes-since (waiter)")
            except Exception as exc:
                smaller = [limit for limit in PAGE_LIMITS if self.page_limit is None or limit < self.page_limit]
                if (getattr(exc, "status", None) or 0) < 500 or not smaller:
                    raise
                # the failed list is reported (a 5xx of the cloud); the pages from now on are smaller
                self.page_limit = smaller[0]
                LOG.warning("novastress: the changes-since list answered %s; asking for %d servers a page "
                            "from now on", getattr(exc, "status", ""), self.page_limit)
                continue
            self.clock.learn(response, sent, time.time())
            body = response.json()
            servers += body.get("servers", [])
            following = [link for link in body.get("servers_links", []) if link.get("rel") == "next"]
            if not following or not body.get("servers"):
                break
            params = {"changes-since": stamp, "marker": body["servers"][-1]["id"]}
        self.listed += len(servers)
        self.list_seconds += time.monotonic() - started
        return servers

    @property
    def clock_offset(self) -> float | None:
        """The cloud's clock minus ours (a safe, slightly low estimate); None before any Date header."""
        return self.clock.low if self.clock.known else None

    def _fallback(self, wait: _Wait) -> None:
        self.polls += 1
        self.fallback_gets += 1
        sent = time.time()
        response = self.compute.get(f"/servers/{wait.server_id}", expect=(200, 404))
        wait.last_seen = time.monotonic()
        wait.observe(None if response.status_code == 404 else response.json()["server"], sent, time.time(),
                     self.clock)

    def _expire(self, poll_error: str | None = None) -> None:
        now = time.monotonic()
        for wait in list(self._waits):
            if not wait.result.ready() and now >= wait.deadline:
                message = _timed_out(wait)
                if poll_error:
                    message += f" (last status poll failed: {poll_error})"
                wait.result.set_exception(WaitError(message))
