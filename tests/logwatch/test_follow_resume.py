"""Follow mode over a real sshd that goes away and comes back: nothing lost, nothing twice."""
from __future__ import annotations

import os
import signal

from logwatch import LogWatcher

from test_local import append, error_record, info_record, messages, wait_listed
from test_ssh import build, follow_readers, hosts  # noqa: F401 (hosts: a fixture)
from waiting import wait_until

# the watcher reconnects fast; a large settle means a record is only ever completed by the
# next record's first line, so a traceback cut by the disconnect must be joined by byte offsets
FOLLOW = dict(follow=True, follow_poll=0.02, follow_interval=0.05, settle=60.0, backoff_initial=0.05,
              backoff_max=0.2)


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cut(server, logdir) -> None:
    """The host goes down: its sshd stops listening and every session it serves is killed."""
    sessions = descendants(server.process.pid)
    assert sessions, "no SSH session to cut"
    server.stop()
    for pid in sessions:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_until(lambda: not follow_readers(logdir), "not follow_readers(logdir)")


def restart(sshd_factory, server, logdir):
    """The same host back: same port, same host key (known_hosts still matches)."""
    return sshd_factory(port=server.port, host_key=server.host_key, setenv={"LOGDIR": str(logdir)})


def consumed(watch: LogWatcher, path) -> bool:
    """The watcher has received every byte of the file (its cursor is at the end)."""
    stat = os.stat(path)
    cursor = watch.hosts[0].cursors.get(stat.st_ino)
    return cursor is not None and cursor.offset == stat.st_size


def test_lines_written_while_disconnected_are_reported_once_in_order(hosts, sshd_factory):
    servers, dirs, settings = hosts
    log = dirs[0] / "nova-compute.log"
    written = log.read_text()                         # boom 100: from before the run, never reported

    def write(text: str) -> None:
        nonlocal written
        append(log, text)
        written += text
    watch = build(servers[:1], settings, **FOLLOW)
    found, statuses = [], []
    watch.start(found.append, statuses.append)
    try:
        wait_listed(watch)
        write(error_record(1) + info_record(1) + error_record(2))
        wait_until(lambda: len(found) >= 1, "len(found) >= 1")
        # a traceback half written when the connection goes
        traceback = error_record(3).splitlines(keepends=True)
        write("".join(traceback[:2]))
        wait_until(lambda: consumed(watch, log) and len(found) >= 2, "consumed(watch, log) and len(found) >= 2")
        assert messages(found) == ["boom 1", "boom 2"]     # boom 3 still held: its end may follow
        cut(servers[0], dirs[0])
        wait_until(lambda: statuses and not statuses[-1].ok, "statuses and not statuses[-1].ok")
        write("".join(traceback[2:]) + info_record(2) + error_record(4))
        write(info_record(3) * 40_000)                # ~2.5 MB backlog: several frames of the reader
        write(error_record(5) + error_record(6)[:-30])   # the last line cut mid-way, too
        restart(sshd_factory, servers[0], dirs[0])
        wait_until(lambda: statuses[-1].ok, "statuses[-1].ok", timeout=20)
        write(error_record(6)[-30:] + info_record(4) + error_record(7) + info_record(5))
        wait_until(lambda: len(found) >= 7, "len(found) >= 7", timeout=20)
        wait_until(lambda: consumed(watch, log), "consumed(watch, log)")
    finally:
        watch.stop()
    assert messages(found) == [f"boom {n}" for n in range(1, 8)]
    assert all(len(f.record.lines) == 5 for f in found)
    assert found[2].record.text + "\n" == error_record(3)
    assert found[5].record.text + "\n" == error_record(6)
    assert [s.ok for s in statuses][0] is False and statuses[-1].ok
    # the remote side was only read
    assert log.read_text() == written and sorted(os.listdir(dirs[0])) == ["nova-compute.log"]


def test_rotation_and_truncation_while_disconnected(hosts, sshd_factory):
    servers, dirs, settings = hosts
    log, api = dirs[0] / "nova-compute.log", dirs[0] / "nova-api.log"
    append(api, info_record(0) * 50 + error_record(101))     # from before the run
    watch = build(servers[:1], settings, **FOLLOW)
    found, statuses = [], []
    watch.start(found.append, statuses.append)
    try:
        wait_listed(watch)
        append(log, error_record(1) + info_record(1))
        append(api, error_record(2) + info_record(2))
        wait_until(lambda: len(found) >= 2, "len(found) >= 2")
        wait_until(lambda: consumed(watch, log) and consumed(watch, api), "consumed(watch, log) and consumed(watch, api)")
        cut(servers[0], dirs[0])
        os.rename(log, dirs[0] / "nova-compute.log.1")       # rotated: a new file at the path
        append(log, error_record(3) + info_record(3))
        with open(api, "w"):                                  # truncated (copytruncate), then written
            pass
        append(api, error_record(4) + info_record(4))
        assert api.stat().st_size < watch.hosts[0].cursors[api.stat().st_ino].offset
        restart(sshd_factory, servers[0], dirs[0])
        wait_until(lambda: len(found) >= 4, "len(found) >= 4", timeout=20)
        append(log, error_record(5) + info_record(5))
        wait_until(lambda: len(found) >= 5, "len(found) >= 5")
        wait_until(lambda: consumed(watch, log) and consumed(watch, api), "consumed(watch, log) and consumed(watch, api)")
    finally:
        watch.stop()
    assert sorted(messages(found)) == [f"boom {n}" for n in range(1, 6)]
    by_file = {path: [f.record.message for f in found if f.path == str(path)] for path in (log, api)}
    assert by_file == {log: ["boom 1", "boom 3", "boom 5"], api: ["boom 2", "boom 4"]}
    assert statuses[-1].ok
