"""The watcher against real OpenSSH sshd servers on loopback: keys, host keys, poll, follow, failures."""
from __future__ import annotations

import os
import time

import pytest

from logwatch import LogWatcher, SSHSettings, SSHTransport, TransportError, WatchConfig, parse_hosts

import sshd as sshd_helper
from waiting import wait_until
from test_local import append, error_record, info_record, messages, wait_listed

GLOB = "$LOGDIR/*.log"            # each sshd sets its own LOGDIR: one directory per "host"


@pytest.fixture
def hosts(tmp_path, sshd_factory, user_key):
    """Two sshd "hosts", each with its own log directory and a known_hosts naming both."""
    servers, dirs = [], []
    for index in range(2):
        logs = tmp_path / f"host{index}-logs"
        logs.mkdir()
        append(logs / "nova-compute.log", error_record(100 + index))      # old errors: not ours
        dirs.append(logs)
        servers.append(sshd_factory(setenv={"LOGDIR": str(logs)}))
    known = sshd_helper.write_known_hosts(tmp_path / "known_hosts", servers)
    settings = SSHSettings(key_filename=str(user_key), known_hosts=str(known), ssh_config=None,
                           allow_agent=False, connect_timeout=5)
    return servers, dirs, settings


def build(servers, settings, **config) -> LogWatcher:
    config.setdefault("settle", 0.05)
    targets = parse_hosts(",".join(s.target for s in servers))
    return LogWatcher.build(WatchConfig(logfiles=GLOB, **config), targets, ssh=settings)


def test_poll_finds_new_errors_once_on_each_host(hosts):
    servers, dirs, settings = hosts
    watch = build(servers, settings)
    try:
        assert watch.check() == []
        append(dirs[0] / "nova-compute.log", info_record(1) + error_record(1))
        append(dirs[1] / "nova-compute.log", error_record(2) + error_record(3))
        found = watch.check()
        assert sorted((f.host, f.record.message) for f in found) == sorted([
            (servers[0].target, "boom 1"), (servers[1].target, "boom 2"), (servers[1].target, "boom 3")])
        assert all(len(f.record.lines) == 5 for f in found)
        assert found[0].name == f"{found[0].host}:{found[0].path}"
        assert watch.check() == []
        # rotation, truncation and a new file, all over SSH
        os.rename(dirs[0] / "nova-compute.log", dirs[0] / "nova-compute.log.1")
        append(dirs[0] / "nova-compute.log", error_record(4))
        with open(dirs[1] / "nova-compute.log", "w"):
            pass
        append(dirs[1] / "nova-compute.log", error_record(5))
        append(dirs[1] / "nova-conductor.log", error_record(6))
        assert sorted(messages(watch.check())) == ["boom 4", "boom 5", "boom 6"]
        assert watch.check() == []
    finally:
        watch.close()


def test_poll_transfers_only_new_bytes(hosts):
    servers, dirs, settings = hosts
    append(dirs[0] / "nova-compute.log", info_record(0) * 20000)          # ~1.5 MB already there
    watch = build(servers[:1], settings)
    try:
        watch.check()
        transport = watch.hosts[0].transport
        before = transport.bytes_in
        line = error_record(9)
        append(dirs[0] / "nova-compute.log", line)
        assert messages(watch.check()) == ["boom 9"]
        assert transport.bytes_in - before <= len(line) + 1024
    finally:
        watch.close()


def test_follow_mode_streams_new_errors(hosts):
    servers, dirs, settings = hosts
    watch = build(servers, settings, follow=True, follow_poll=0.02, rescan=0.2)
    found, statuses = [], []
    watch.start(found.append, statuses.append)
    try:
        wait_listed(watch)
        append(dirs[0] / "nova-compute.log", info_record(1) + error_record(1))
        append(dirs[1] / "nova-compute.log", error_record(2))
        wait_until(lambda: len(found) >= 2, "len(found) >= 2")
        append(dirs[1] / "nova-api.log", error_record(3))                 # a new file: its own stream
        wait_until(lambda: len(found) >= 3, "len(found) >= 3")
        os.rename(dirs[0] / "nova-compute.log", dirs[0] / "nova-compute.log.1")
        append(dirs[0] / "nova-compute.log", error_record(4))             # a rotated file: its new inode from 0
        wait_until(lambda: len(found) >= 4, "len(found) >= 4")
        time.sleep(0.3)
    finally:
        watch.stop()
    assert sorted(messages(found)) == ["boom 1", "boom 2", "boom 3", "boom 4"]
    assert all(len(f.record.lines) == 5 for f in found)
    assert statuses == []


def test_unknown_host_refused_by_default_accepted_with_auto_add(tmp_path, sshd_factory, user_key):
    server = sshd_factory(setenv={"LOGDIR": str(tmp_path)})
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    refusing = SSHTransport(SSHSettings(key_filename=str(user_key), known_hosts=str(empty), ssh_config=None,
                                        allow_agent=False), server.address, server.port)
    with pytest.raises(TransportError, match="unknown host key") as error:
        refusing.connect()
    assert "\n" not in str(error.value)
    settings = SSHSettings(key_filename=str(user_key), known_hosts=str(empty), ssh_config=None,
                           allow_agent=False, auto_add_host_keys=True)
    accepting = SSHTransport(settings, server.address, server.port)
    try:
        accepting.connect()
        assert accepting.list_files(GLOB) == []
    finally:
        accepting.close()
    assert empty.read_text() == ""                    # auto-add never writes the user's files
    # the key seen first is the one trusted: the same address with another host key is refused
    server.stop()
    other = sshd_factory(port=server.port, setenv={"LOGDIR": str(tmp_path)})
    assert other.port == server.port
    again = SSHTransport(settings, server.address, server.port)
    with pytest.raises(TransportError, match="host key mismatch"):
        again.connect()


def test_host_key_mismatch_refused(tmp_path, sshd_factory, user_key):
    first, second = sshd_factory(), sshd_factory()
    lying = tmp_path / "known_hosts"
    # second's address with first's key: what a re-installed (or impostor) host looks like
    kind, blob = first.host_key_line().split()[1:]
    lying.write_text(f"[{second.address}]:{second.port} {kind} {blob}\n")
    transport = SSHTransport(SSHSettings(key_filename=str(user_key), known_hosts=str(lying), ssh_config=None,
                                         allow_agent=False, auto_add_host_keys=True),
                             second.address, second.port)
    with pytest.raises(TransportError, match="host key mismatch.*ssh-keygen -R"):
        transport.connect()


def test_wrong_or_missing_key_gives_one_clear_line(tmp_path, sshd_factory, user_key):
    server = sshd_factory()
    known = sshd_helper.write_known_hosts(tmp_path / "known_hosts", [server])
    stranger = sshd_helper.make_key(tmp_path / "not-authorized")
    wrong = SSHTransport(SSHSettings(key_filename=str(stranger), known_hosts=str(known), ssh_config=None,
                                     allow_agent=False), server.address, server.port)
    with pytest.raises(TransportError, match="authentication failed.*--target-private-key-path") as error:
        wrong.connect()
    assert "\n" not in str(error.value) and "BEGIN" not in str(error.value)
    missing = SSHTransport(SSHSettings(key_filename=str(tmp_path / "nope"), known_hosts=str(known),
                                       ssh_config=None), server.address, server.port)
    with pytest.raises(TransportError, match="does not exist"):
        missing.connect()


def test_dead_host_is_retried_while_the_others_are_watched(tmp_path, hosts, sshd_factory):
    servers, dirs, settings = hosts
    dead_port = sshd_helper.free_port()
    dead_logs = tmp_path / "dead-logs"
    dead_logs.mkdir()
    targets = parse_hosts(f"{servers[0].target},127.0.0.1:{dead_port}")
    watch = LogWatcher.build(WatchConfig(logfiles=GLOB, interval=0.05, settle=0.02, backoff_initial=0.05,
                                         backoff_max=0.2), targets, ssh=settings)
    found, statuses = [], []
    watch.start(found.append, statuses.append)
    try:
        wait_until(lambda: watch.hosts[0].listed, "watch.hosts[0].listed")
        append(dirs[0] / "nova-compute.log", error_record(1))
        wait_until(lambda: found, "found")
        wait_until(lambda: watch.hosts[1].failures >= 3, "three failed tries")       # retried, with backoff
        assert [(s.host, s.ok) for s in statuses] == [(f"127.0.0.1:{dead_port}", False)]   # reported once
        assert "cannot connect" in statuses[0].message and "\n" not in statuses[0].message
        # the host comes up (its key known beforehand): watched from then on
        host_key = sshd_helper.make_key(tmp_path / "revived_host_key")
        kind, blob = host_key.with_suffix(".pub").read_text().split()[:2]
        with open(settings.known_hosts, "a") as handle:
            handle.write(f"[127.0.0.1]:{dead_port} {kind} {blob}\n")
        sshd_factory(port=dead_port, host_key=host_key, setenv={"LOGDIR": str(dead_logs)})
        wait_until(lambda: len(statuses) == 2, "len(statuses) == 2")
        assert statuses[1].ok
        wait_until(lambda: watch.hosts[1].listed, "watch.hosts[1].listed")
        append(dead_logs / "nova-api.log", error_record(2))           # a new file there: from its start
        wait_until(lambda: len(found) >= 2, "len(found) >= 2")
    finally:
        watch.stop()
    assert sorted(messages(found)) == ["boom 1", "boom 2"]


def test_explicit_port_and_ssh_config(tmp_path, sshd_factory, user_key):
    server = sshd_factory(setenv={"LOGDIR": str(tmp_path)})
    known = sshd_helper.write_known_hosts(tmp_path / "known_hosts", [server])
    append(tmp_path / "a.log", error_record(1))
    # an explicit host:port wins over --ssh-port
    settings = SSHSettings(key_filename=str(user_key), known_hosts=str(known), ssh_config=None,
                           allow_agent=False, port=1)
    explicit = SSHTransport(settings, server.address, server.port)
    try:
        assert [s.size for s in explicit.list_files(GLOB)] == [(tmp_path / "a.log").stat().st_size]
    finally:
        explicit.close()
    # ~/.ssh/config style: an alias with HostName, Port, User and IdentityFile
    config = tmp_path / "ssh_config"
    config.write_text(f"Host compute-7\n  HostName {server.address}\n  Port {server.port}\n"
                      f"  User {server.user}\n  IdentityFile {user_key}\n")
    aliased = SSHTransport(SSHSettings(known_hosts=str(known), ssh_config=str(config), allow_agent=False),
                           "compute-7")
    try:
        assert len(aliased.list_files(GLOB)) == 1
        data = aliased.read(str(tmp_path / "a.log"), 0, 10_000)
        assert data.decode() == error_record(1)
    finally:
        aliased.close()


def test_never_modifies_remote_files(hosts):
    servers, dirs, settings = hosts
    log = dirs[0] / "nova-compute.log"
    before = (log.read_bytes(), log.stat().st_mtime_ns, sorted(os.listdir(dirs[0])))
    watch = build(servers[:1], settings, from_start=True)
    try:
        assert messages(watch.check()) == ["boom 100"]
    finally:
        watch.close()
    assert (log.read_bytes(), log.stat().st_mtime_ns, sorted(os.listdir(dirs[0]))) == before


def test_follow_stream_that_ends_is_reopened(tmp_path, hosts):
    servers, dirs, settings = hosts
    watch = LogWatcher.build(WatchConfig(logfiles=GLOB, follow=True, follow_poll=0.02, settle=0.05,
                                         backoff_initial=0.05, backoff_max=0.2),
                             parse_hosts(servers[0].target), ssh=settings)
    found, statuses = [], []
    watch.start(found.append, statuses.append)
    try:
        wait_listed(watch)
        readers = follow_readers(dirs[0])
        assert len(readers) == 1
        os.kill(readers[0], 15)                         # the remote reader dies: the stream ends
        wait_until(lambda: [s.ok for s in statuses] == [False, True], "[s.ok for s in statuses] == [False, True]")
        assert "follow reader ended" in statuses[0].message
        wait_listed(watch)
        append(dirs[0] / "nova-compute.log", error_record(1))
        wait_until(lambda: found, "found")
    finally:
        watch.stop()
    assert messages(found) == ["boom 1"]


def follow_readers(logdir) -> list[int]:
    """Pids of the remote follow readers whose session has LOGDIR=logdir (one test sshd)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
        except OSError:
            continue
        if "logwatch follow reader" in _cmdline(pid) and f"LOGDIR={logdir}".encode() in environ:
            found.append(int(pid))
    return found


def _cmdline(pid: str) -> str:
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
