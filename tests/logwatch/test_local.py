"""Incremental reading on the local transport: offsets, rotation, truncation, new files."""
from __future__ import annotations

import os
import threading
import time

from logwatch import HostStatus, LogWatcher, Target, WatchConfig
from waiting import wait_until

TS = "2026-11-28 05:41:32.753"


def error_record(n: int, logger: str = "nova.compute.manager", request_id: str | None = None) -> str:
    rid = request_id or f"req-00000000-0000-4000-8000-{n:012d}"
    return (f"{TS} 18814 ERROR {logger} [None {rid} - - - - - -] boom {n}\n"
            f"{TS} 18814 ERROR {logger} Traceback (most recent call last):\n"
            f"{TS} 18814 ERROR {logger}   File \"x.py\", line {n}, in f\n"
            f"{TS} 18814 ERROR {logger} RuntimeError: boom {n}\n"
            f"{TS} 18814 ERROR {logger} \n")


def info_record(n: int) -> str:
    return f"{TS} 18814 INFO nova.compute.manager [-] fine {n}\n"


def append(path, text: str) -> None:
    with open(path, "a") as handle:
        handle.write(text)


def watcher(directory, **config) -> LogWatcher:
    config.setdefault("settle", 0.0)
    return LogWatcher.build(WatchConfig(logfiles=str(directory / "*.log"), **config),
                            [Target("node", "localhost")], local=True)


def wait_listed(watch: LogWatcher, timeout: float = 5.0) -> None:
    """Until every host set its starting offsets (follow mode: its streams opened the files)."""
    wait_until(lambda: all(h.ready for h in watch.hosts), "every host listed", timeout, interval=0.01)


def messages(findings) -> list[str]:
    return [f.record.message for f in findings]


def test_starts_at_the_end_and_reports_each_error_once(tmp_path):
    log = tmp_path / "nova-compute.log"
    append(log, error_record(1) + info_record(2))
    watch = watcher(tmp_path)
    assert watch.check() == []                            # errors from before the run are not blamed
    append(log, info_record(3) + error_record(4) + info_record(5))
    found = watch.check()
    assert messages(found) == ["boom 4"]
    assert len(found[0].record.lines) == 5 and found[0].name == f"node:{log}"
    assert watch.check() == []                            # never reported twice
    append(log, error_record(6))                          # the last record of a file is reported too
    assert messages(watch.check()) == ["boom 6"]


def test_from_start_reads_existing_errors(tmp_path):
    append(tmp_path / "a.log", error_record(1) + info_record(2) + error_record(3))
    watch = watcher(tmp_path, from_start=True)
    assert messages(watch.check()) == ["boom 1", "boom 3"]
    assert watch.check() == []


def test_clean_and_missing_logs_do_not_crash(tmp_path):
    append(tmp_path / "a.log", info_record(1))
    watch = watcher(tmp_path, from_start=True)
    assert watch.check() == [] and watch.check() == []
    assert watcher(tmp_path / "missing").check() == []
    (tmp_path / "empty.log").write_text("")
    assert watcher(tmp_path, from_start=True).check() == []


def test_rotation_reads_the_new_file_from_its_start(tmp_path):
    log = tmp_path / "nova-api.log"
    append(log, info_record(1))
    watch = watcher(tmp_path)
    watch.check()
    append(log, error_record(2))
    assert messages(watch.check()) == ["boom 2"]
    os.rename(log, tmp_path / "nova-api.log.1")          # logrotate "create": new inode at the path
    append(log, error_record(3))
    assert messages(watch.check()) == ["boom 3"]
    assert watch.check() == []


def test_rotated_file_matched_by_the_glob_is_not_read_again(tmp_path):
    log = tmp_path / "nova-api.log"
    append(log, info_record(1))
    watch = LogWatcher.build(WatchConfig(logfiles=str(tmp_path / "nova-api.log*"), settle=0),
                             [Target("node", "localhost")], local=True)
    watch.check()
    append(log, error_record(2))
    assert messages(watch.check()) == ["boom 2"]
    os.rename(log, tmp_path / "nova-api.log.1")
    append(tmp_path / "nova-api.log.1", error_record(3))  # the old file got one more line before closing
    append(log, error_record(4))
    assert sorted(messages(watch.check())) == ["boom 3", "boom 4"]


def test_truncation_starts_over(tmp_path):
    log = tmp_path / "nova-api.log"
    append(log, info_record(1) * 50)
    watch = watcher(tmp_path)
    watch.check()
    with open(log, "w"):                                  # copytruncate
        pass
    append(log, error_record(2))
    assert messages(watch.check()) == ["boom 2"]
    assert watch.check() == []


def test_new_files_are_picked_up_from_their_start(tmp_path):
    append(tmp_path / "a.log", info_record(1))
    watch = watcher(tmp_path)
    assert watch.check() == []
    append(tmp_path / "nova-compute-compute-9.log", error_record(2))
    found = watch.check()
    assert messages(found) == ["boom 2"] and found[0].path.endswith("nova-compute-compute-9.log")


def test_ignore_and_pattern_options(tmp_path):
    log = tmp_path / "a.log"
    append(log, "")
    watch = watcher(tmp_path, ignore=["memcache_pool"], patterns=["ERROR"])
    watch.check()
    append(log, f"{TS} 1 ERROR stevedore.extension [-] Could not load 'oslo_cache.memcache_pool'\n"
           + error_record(2))
    assert messages(watch.check()) == ["boom 2"]


def test_record_written_in_two_parts_is_one_finding(tmp_path):
    log = tmp_path / "a.log"
    append(log, "")
    watch = watcher(tmp_path, settle=0.3)
    watch.check()
    record = error_record(1)
    lines = record.splitlines(keepends=True)
    append(log, "".join(lines[:2]))

    def finish() -> None:                  # the writer finishes the traceback within the settle time
        time.sleep(0.05)
        append(log, "".join(lines[2:]))
    writer = threading.Thread(target=finish)
    writer.start()
    found = watch.check()
    writer.join()
    assert [len(f.record.lines) for f in found] == [5]


def test_follow_mode_threads_report_new_errors(tmp_path):
    log = tmp_path / "a.log"
    append(log, error_record(1))
    watch = watcher(tmp_path, follow=True, settle=0.05, follow_poll=0.02)
    found, statuses = [], []
    watch.start(found.append, statuses.append)
    try:
        wait_listed(watch)
        append(log, error_record(2))
        wait_until(lambda: found, "a finding", 5)
    finally:
        rest = watch.stop()
    assert messages(found) == ["boom 2"] and rest == [] and statuses == []


def test_a_failing_report_does_not_end_the_watch(tmp_path, caplog):
    log = tmp_path / "a.log"
    append(log, "")
    watch = watcher(tmp_path, follow=True, settle=0.05, follow_poll=0.02)
    found = []

    def report(finding) -> None:
        if finding.record.message == "boom 1":
            raise TypeError("the report broke")
        found.append(finding)
    watch.start(report)
    try:
        wait_listed(watch)
        append(log, error_record(1))
        append(log, error_record(2))
        wait_until(lambda: found, "a finding", 5)
    finally:
        watch.stop()
    assert messages(found) == ["boom 2"]
    assert "could not report the error in" in caplog.text and "TypeError: the report broke" in caplog.text


def test_stop_makes_a_final_check(tmp_path):
    log = tmp_path / "a.log"
    append(log, "")
    watch = watcher(tmp_path, interval=3600)
    found = []
    watch.start(found.append)
    wait_listed(watch)
    append(log, error_record(7))
    watch.stop(on_finding=found.append)
    assert messages(found) == ["boom 7"]


def test_unreadable_host_is_reported_once(tmp_path):
    from logwatch import TransportError
    watch = watcher(tmp_path, backoff_initial=0.0, backoff_max=0.0)
    host = watch.hosts[0]

    def fail(pattern):
        raise TransportError("node: cannot connect; fix it")
    host.transport.list_files = fail
    statuses: list[HostStatus] = []
    for _ in range(3):
        assert watch.check(statuses.append) == []
    assert [s.ok for s in statuses] == [False]
    del host.transport.list_files
    watch.check(statuses.append)
    assert [s.ok for s in statuses] == [False, True]
