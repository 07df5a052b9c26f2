"""Watch log files on many hosts; report each new error record once.

    watcher = LogWatcher.build(WatchConfig(logfiles="/opt/stack/logs/*.log"),
                               [Target("controller", "10.0.0.5")], ssh=SSHSettings(user="stack"))
    watcher.start(on_finding=print, on_status=print)     # one thread (greenlet under gevent) per host
    ...
    watcher.stop()

Per file the watcher keeps (inode, offset) and reads only the bytes after the
offset: a rotated file (new inode at the path) is read from its start, a
truncated one (size below the offset) too, a file that appears during the run
from its start; files present at start are read from their current end unless
`from_start`. Findings are complete records (a traceback is one finding).

Follow mode over SSH keeps the same cursors: a remote reader pushes what grew,
each piece tagged with its inode and offset, and a reconnect restarts the reader
at the saved offsets, so lines written while the connection was down are read
once, and a traceback cut by the disconnect stays one record.
"""
from __future__ import annotations

import codecs
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from .matching import Matcher
from .records import LogRecord, RecordGrouper
from .targets import Target
from .transports import (FileState, FollowPiece, FollowStream, LocalTransport, SSHSettings, SSHTransport,
                         Transport, TransportError)

logger = logging.getLogger("novastress.logwatch")
ENCODING = "utf-8"
# bytes read and parsed at a time: a file that grew by a gigabyte between two checks is
# read piece by piece, and only error records are kept, so memory stays flat
PIECE = 1024 * 1024


@dataclass
class WatchConfig:
    logfiles: str                            # shell glob(s), expanded on every check
    patterns: list[str] | str | None = None  # default ERROR|TRACE
    ignore: list[str] | str | None = None
    interval: float = 60.0                   # poll mode: seconds between checks
    follow: bool = False                     # a streaming reader per host
    from_start: bool = False                 # read files present at start from byte 0
    settle: float = 0.2                      # quiet time before the last record of a file is final
    follow_poll: float = 0.1                 # follow mode: local files, and stream wake-ups
    follow_interval: float = 0.25            # follow mode over SSH: the remote reader's pass interval
    rescan: float = 5.0                      # follow mode: forget files gone from the glob this often
    backoff_initial: float = 1.0
    backoff_max: float = 60.0


@dataclass
class Finding:
    """One error record, on one host, in one file."""

    host: str
    path: str
    record: LogRecord

    @property
    def name(self) -> str:
        return f"{self.host}:{self.path}"


@dataclass
class HostStatus:
    """A change of a host's state: `ok` False with the cause and fix, or True when it recovered."""

    host: str
    ok: bool
    message: str


@dataclass
class HostCoverage:
    """What the watch of one host covered: `state` is watched, never reached or lost (its
    connection failed and had not come back when the watch ended)."""

    host: str
    state: str
    files: list[str]
    watched_seconds: float
    error: str | None = None


@dataclass
class FileCursor:
    path: str
    inode: int
    offset: int
    grouper: RecordGrouper = field(default_factory=RecordGrouper)
    last_data: float = 0.0
    # a character split between two reads is decoded whole
    decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder(ENCODING)("replace"))

    def feed(self, data: bytes, now: float) -> list[LogRecord]:
        if data:
            self.last_data = now
        return self.grouper.feed(self.decoder.decode(data))

    def reset(self) -> None:
        self.offset = 0
        self.grouper.reset()
        self.decoder.reset()


class HostWatcher:
    """One host: its transport, one cursor per file, and its connection state."""

    def __init__(self, target: Target, transport: Transport, config: WatchConfig, matcher: Matcher) -> None:
        self.target = target
        self.transport = transport
        self.config = config
        self.matcher = matcher
        # by inode, in both modes: a renamed file keeps its cursor, and follow mode resumes
        # every file at its offset after a reconnect
        self.cursors: dict[int, FileCursor] = {}
        self.listed = False                          # the first listing sets the starting offsets
        self.error: str | None = None
        self.failures = 0
        self.retry_at = 0.0
        self.stream: FollowStream | None = None      # follow mode over SSH: the remote reader
        self.streams: list[FollowStream] = []
        self._next_prune = 0.0
        self._released: list[tuple[FileCursor, LogRecord]] = []   # pruned, not yet reported
        # coverage: when the host was first read, since when it is down, how long it was down
        self.first_ok: float | None = None
        self.down_since: float | None = None
        self.down_total = 0.0
        self.paths: set[str] = set()

    @property
    def host(self) -> str:
        return self.target.label

    @property
    def ready(self) -> bool:
        """The starting offsets are set (in follow mode: by the reader's first pass)."""
        return self.listed and all(stream.synced for stream in self.streams)

    # -- poll mode ------------------------------------------------------------------------------
    def check(self) -> list[Finding]:
        """Read what is new in every file; records still being written wait `settle` once."""
        now = time.monotonic()
        states = self.transport.list_files(self.config.logfiles)
        records = self._sync(states, now)
        touched = [c for c in self.cursors.values() if c.grouper.pending and c.last_data == now]
        if touched and self.config.settle > 0:
            time.sleep(self.config.settle)
            later = time.monotonic()
            for cursor in touched:
                records += self._consume(cursor, None, later)
        for cursor in self.cursors.values():
            tail = cursor.grouper.flush()
            if tail is not None:
                records.append((cursor, tail))
        return self._findings(records)

    def _sync(self, states: list[FileState], now: float) -> list[tuple[FileCursor, LogRecord]]:
        records: list[tuple[FileCursor, LogRecord]] = []
        first = not self.listed
        present = {state.inode for state in states}
        for inode in [i for i in self.cursors if i not in present]:
            # rotated away or deleted: what was held back is final
            gone = self.cursors.pop(inode)
            tail = gone.grouper.flush()
            if tail is not None:
                records.append((gone, tail))
        for state in states:
            cursor = self.cursors.get(state.inode)
            if cursor is None:
                start = state.size if first and not self.config.from_start else 0
                cursor = self.cursors[state.inode] = FileCursor(state.path, state.inode, start)
            cursor.path = state.path
            self.paths.add(state.path)
            if state.size < cursor.offset:           # truncated (copytruncate, `> file`)
                cursor.reset()
            if state.size > cursor.offset:
                records += self._consume(cursor, state.size - cursor.offset, now)
        self.listed = True
        return records

    def _consume(self, cursor: FileCursor, length: int | None, now: float) -> list[tuple[FileCursor, LogRecord]]:
        """Read `length` bytes (None: all there is) after the cursor in bounded pieces; keep
        only the records that match, so a huge backlog never sits in memory whole."""
        kept: list[tuple[FileCursor, LogRecord]] = []
        done = 0
        while length is None or done < length:
            size = PIECE if length is None else min(length - done, PIECE)
            piece = self.transport.read(cursor.path, cursor.offset, size)
            if not piece:
                break
            cursor.offset += len(piece)
            done += len(piece)
            kept += [(cursor, r) for r in cursor.feed(piece, now) if self.matcher.matches(r)]
            if length is None and len(piece) < size:
                break
        return kept

    def _findings(self, records: list[tuple[FileCursor, LogRecord]]) -> list[Finding]:
        return [Finding(self.host, cursor.path, record) for cursor, record in records
                if self.matcher.matches(record)]

    # -- follow mode ----------------------------------------------------------------------------
    def follow_step(self) -> list[Finding]:
        """Streams: take what arrived; local files: a quick check. Never blocks long."""
        if not self.transport.streams:
            return self.check()
        now = time.monotonic()
        if self.stream is None:
            self._open_follow()
        elif now >= self._next_prune and self.stream.synced:
            self._prune()
        try:
            pieces = self.stream.receive()
        except TransportError:
            self.close_streams()
            raise
        records, self._released = self._released, []
        for piece in pieces:
            cursor, held = self._piece_cursor(piece)
            records += held
            cursor.offset += len(piece.data)
            records += [(cursor, r) for r in cursor.feed(piece.data, now)]
        if self.stream.synced:
            # the reader sent a whole pass since it (re)started, so the catch-up is in: a
            # traceback cut by a disconnect got its end before its quiet time is judged
            self.listed = True
            for cursor in self.cursors.values():
                if cursor.grouper.pending and now - cursor.last_data >= self.config.settle:
                    records.append((cursor, cursor.grouper.flush()))
        return self._findings(records)

    def _open_follow(self) -> None:
        """(Re)start the remote reader at every file's saved (inode, offset)."""
        if self.cursors:
            self._prune()                # rotated away while disconnected: what was held is final
        first = not self.listed
        offsets = {inode: cursor.offset for inode, cursor in self.cursors.items()}
        self.stream = self.transport.open_follow(self.config.logfiles, offsets,
                                                 from_end=first and not self.config.from_start,
                                                 interval=self.config.follow_interval)
        self.streams = [self.stream]
        self._next_prune = time.monotonic() + self.config.rescan

    def _prune(self) -> None:
        """Forget files gone from the glob (rotated away, deleted); their last record is final."""
        self._next_prune = time.monotonic() + self.config.rescan
        present = {state.inode for state in self.transport.list_files(self.config.logfiles)}
        for inode in [i for i in self.cursors if i not in present]:
            gone = self.cursors.pop(inode)
            tail = gone.grouper.flush()
            if tail is not None:
                self._released.append((gone, tail))

    def _piece_cursor(self, piece: FollowPiece) -> tuple[FileCursor, list[tuple[FileCursor, LogRecord]]]:
        """The cursor of the piece's inode, moved to where the reader says the piece starts."""
        held: list[tuple[FileCursor, LogRecord]] = []
        cursor = self.cursors.get(piece.inode)
        if cursor is None:
            cursor = self.cursors[piece.inode] = FileCursor(piece.path, piece.inode, piece.offset)
        elif piece.offset != cursor.offset:
            # truncated (the reader went back to 0; never a gap otherwise): the record held
            # back is final, the rest of the old content is gone
            tail = cursor.grouper.flush()
            if tail is not None:
                held.append((cursor, tail))
            cursor.reset()
            cursor.offset = piece.offset
        cursor.path = piece.path
        self.paths.add(piece.path)
        return cursor, held

    def close_streams(self) -> None:
        for stream in self.streams:
            stream.close()
        self.streams = []
        self.stream = None

    def flush(self) -> list[Finding]:
        """Everything held back, as final (end of the run)."""
        records = []
        for cursor in self.cursors.values():
            tail = cursor.grouper.flush()
            if tail is not None:
                records.append((cursor, tail))
        return self._findings(records)

    # -- connection state -----------------------------------------------------------------------
    def failed(self, error: TransportError) -> HostStatus | None:
        """Schedule a retry with backoff; a status only when the cause changed."""
        if self.down_since is None:
            self.down_since = time.monotonic()
        self.failures += 1
        delay = min(self.config.backoff_max, self.config.backoff_initial * 2 ** (self.failures - 1))
        self.retry_at = time.monotonic() + delay
        self.close_streams()
        self.transport.close()
        message = str(error)
        if message == self.error:
            return None
        self.error = message
        return HostStatus(self.host, False, f"{message} (retrying with backoff up to "
                                            f"{self.config.backoff_max:g} s)")

    def succeeded(self) -> HostStatus | None:
        now = time.monotonic()
        if self.first_ok is None:
            self.first_ok = now
            self.down_since = None       # the time before the first read is not downtime
        elif self.down_since is not None:
            self.down_total += now - self.down_since
            self.down_since = None
        self.failures = 0
        if self.error is None:
            return None
        self.error = None
        return HostStatus(self.host, True, f"{self.host}: reachable again, watching its logs")

    def coverage(self, now: float) -> HostCoverage:
        files = sorted(self.paths)
        if self.first_ok is None:
            return HostCoverage(self.host, "never reached", files, 0.0, self.error or "not read before the end")
        end = self.down_since if self.down_since is not None else now
        watched = max(0.0, end - self.first_ok - self.down_total)
        if self.down_since is not None:
            return HostCoverage(self.host, "lost", files, watched, self.error)
        return HostCoverage(self.host, "watched", files, watched)

    def close(self) -> None:
        self.close_streams()
        self.transport.close()


class LogWatcher:
    """Every host's watcher, run in poll or follow mode; findings and status changes go to callbacks."""

    def __init__(self, hosts: list[HostWatcher], config: WatchConfig) -> None:
        self.hosts = hosts
        self.config = config
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.covered: list[HostCoverage] = []       # set by stop(): what each host's watch covered

    @classmethod
    def build(cls, config: WatchConfig, targets: list[Target], ssh: SSHSettings | None = None,
              local: bool = False) -> "LogWatcher":
        """Local transport when `local` (or no SSH settings), else one SSH connection per target."""
        matcher = Matcher.build(config.patterns, config.ignore)
        hosts = []
        for target in targets:
            if local or ssh is None:
                transport: Transport = LocalTransport(target.label)
            else:
                transport = SSHTransport(ssh, target.address, target.port)
            hosts.append(HostWatcher(target, transport, config, matcher))
        return cls(hosts, config)

    def check(self, on_status: Callable[[HostStatus], None] | None = None) -> list[Finding]:
        """One check of every host in turn (a host that fails is skipped until its retry time)."""
        findings: list[Finding] = []
        for host in self.hosts:
            findings += self._step(host, host.check, on_status)
        return findings

    def _step(self, host: HostWatcher, step: Callable[[], list[Finding]],
              on_status: Callable[[HostStatus], None] | None) -> list[Finding]:
        if time.monotonic() < host.retry_at:
            return []
        findings: list[Finding] = []
        try:
            findings = step()
        except TransportError as error:
            status = host.failed(error)
        else:
            status = host.succeeded()
        if status is not None and on_status is not None:
            on_status(status)
        return findings

    def start(self, on_finding: Callable[[Finding], None],
              on_status: Callable[[HostStatus], None] | None = None) -> None:
        """One thread per host (a greenlet when gevent patched threading): a dead host delays no other."""
        self._stop.clear()
        for host in self.hosts:
            thread = threading.Thread(target=self._run_host, args=(host, on_finding, on_status),
                                      name=f"logwatch-{host.host}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _run_host(self, host: HostWatcher, on_finding, on_status) -> None:
        follow = self.config.follow
        while not self._stop.is_set():
            step = host.follow_step if follow else host.check
            for finding in self._step(host, step, on_status):
                self._deliver(on_finding, finding)
            if follow:
                pause = self.config.follow_poll if host.transport.streams else \
                    max(self.config.follow_poll, self.config.settle)
            else:
                pause = self.config.interval
            if host.retry_at > time.monotonic():
                pause = min(pause, max(0.05, host.retry_at - time.monotonic()))
            self._stop.wait(pause)

    def _deliver(self, on_finding, finding: Finding) -> None:
        with self._lock:             # callbacks see one finding at a time
            try:
                on_finding(finding)
            except Exception as exc:  # noqa: BLE001 - a bad callback must not end the host's watch
                logger.error("log watch: could not report the error in %s (%s): %s: %s", finding.name,
                             finding.record.summary(), type(exc).__name__, exc)

    def stop(self, on_finding: Callable[[Finding], None] | None = None, final_check: bool = True,
             timeout: float = 10.0) -> list[Finding]:
        """Stop the threads; a last check (and flush) catches what was written at the very end."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = []
        findings: list[Finding] = []
        for host in self.hosts:
            # follow mode too: the reader stops, and one last poll from the same cursors reads
            # what it had not sent yet
            host.close_streams()
            if final_check and host.listed and host.error is None:
                try:
                    findings += host.check()
                except TransportError:
                    pass
            findings += host.flush()
            host.close()
        self.covered = [host.coverage(time.monotonic()) for host in self.hosts]
        if on_finding is not None:
            for finding in findings:
                self._deliver(on_finding, finding)
        return findings

    def close(self) -> None:
        for host in self.hosts:
            host.close()
