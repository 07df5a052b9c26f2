"""How the watcher reaches a host's files: the local file system, or one SSH connection per host.

    transport = SSHTransport(SSHSettings(user="stack", key_filename="~/.ssh/id_ed25519"), "compute-1")
    for state in transport.list_files("/opt/stack/logs/*.log"):
        data = transport.read(state.path, offset, state.size - offset)

Both only ever read: no remote command writes, moves or truncates anything.
Over SSH a poll is one `stat` of the glob plus one bounded `tail -c +N | head -c L`
per file that grew, sent to one persistent remote shell; follow mode adds one
channel running a small read-only sh loop that does the same on the remote side
and pushes what grew, framed with each file's inode and offset, so a reconnect
resumes exactly where the last one stopped. All on one connection per host.
"""
from __future__ import annotations

import glob as globbing
import os
import secrets
import shlex
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

EXEC_TIMEOUT = 30.0
READ_CHUNK = 4 * 1024 * 1024


class TransportError(RuntimeError):
    """The host cannot be read; str is one line naming the host, the cause and the fix."""


@dataclass(frozen=True)
class FileState:
    path: str
    inode: int
    size: int


class Transport:
    """A host's files: expand a glob, read byte ranges, and optionally stream new lines."""

    host: str = ""
    streams = False          # True when open_follow gives a pushed stream (follow mode)
    bytes_in = 0             # bytes received, file data and listings (benchmarks)

    def connect(self) -> None:
        """Make sure the host can be read; raises TransportError."""

    def list_files(self, pattern: str) -> list[FileState]:
        raise NotImplementedError

    def read(self, path: str, offset: int, length: int) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        """Release connections."""


class LocalTransport(Transport):
    """Files on this machine (the embedded cloud, single-host clouds)."""

    def __init__(self, host: str = "localhost") -> None:
        self.host = host
        self.bytes_in = 0

    def list_files(self, pattern: str) -> list[FileState]:
        states = []
        for word in shlex.split(pattern):
            for path in sorted(globbing.glob(os.path.expanduser(os.path.expandvars(word)))):
                try:
                    stat = os.stat(path)
                except OSError:
                    continue              # rotated away between glob and stat
                if os.path.isfile(path):
                    states.append(FileState(path, stat.st_ino, stat.st_size))
        return states

    def read(self, path: str, offset: int, length: int) -> bytes:
        try:
            with open(path, "rb") as handle:
                handle.seek(offset)
                data = handle.read(length)
        except OSError as error:
            raise TransportError(f"{self.host}: cannot read {path}: {error.strerror}") from None
        self.bytes_in += len(data)
        return data


@dataclass
class SSHSettings:
    """How to reach every host; per-host values from ~/.ssh/config fill what is not given here."""

    user: str | None = None
    key_filename: str | None = None
    port: int | None = None                  # --ssh-port; an explicit host:port wins
    known_hosts: str | None = None           # None: ~/.ssh/known_hosts (+ system files)
    auto_add_host_keys: bool = False         # accept unknown host keys (never a changed one)
    ssh_config: str | None = "~/.ssh/config"
    allow_agent: bool = True
    connect_timeout: float = 10.0
    host_keys_seen: dict = field(default_factory=dict)   # auto-added keys, shared by the hosts


class SSHTransport(Transport):
    """One persistent paramiko connection to one host; channels opened on it per command."""

    streams = True

    def __init__(self, settings: SSHSettings, host: str, port: int | None = None) -> None:
        self.settings = settings
        self.host = host if port is None else f"{host}:{port}"
        self._hostname = host
        self._explicit_port = port
        self._client = None
        self._shell = None
        self.bytes_in = 0

    # -- connection -----------------------------------------------------------------------------
    def _resolved(self) -> dict:
        """hostname, port, user, key files, proxy from the options and ~/.ssh/config."""
        import paramiko
        found: dict = {}
        path = Path(os.path.expanduser(self.settings.ssh_config)) if self.settings.ssh_config else None
        if path is not None and path.is_file():
            try:
                found = paramiko.SSHConfig.from_path(str(path)).lookup(self._hostname)
            except Exception as error:    # a broken config must not hide the host's real problem
                raise TransportError(f"{self.host}: cannot parse {path}: {error}; fix that file") from None
        port = self._explicit_port or self.settings.port or int(found.get("port", 22))
        keys = [self.settings.key_filename] if self.settings.key_filename else found.get("identityfile")
        return {"hostname": found.get("hostname", self._hostname), "port": port,
                "user": self.settings.user or found.get("user") or _local_user(),
                "keys": [os.path.expanduser(k) for k in keys] if keys else None,
                "proxy": found.get("proxycommand"), "known_hosts": found.get("userknownhostsfile")}

    def connect(self) -> None:
        if self._client is not None:
            transport = self._client.get_transport()
            if transport is not None and transport.is_active():
                return
            self.close()
        import paramiko
        where = self._resolved()
        if where["keys"]:
            for key in where["keys"]:
                if not os.path.isfile(key):
                    raise TransportError(f"{self.host}: private key {key} does not exist; "
                                         f"fix --target-private-key-path")
        client = paramiko.SSHClient()
        self._load_host_keys(client, where)
        if self.settings.auto_add_host_keys:
            client.set_missing_host_key_policy(_RememberPolicy(self.settings.host_keys_seen))
        else:
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
        sock = paramiko.ProxyCommand(where["proxy"]) if where["proxy"] else None
        timeout = self.settings.connect_timeout
        try:
            client.connect(where["hostname"], port=where["port"], username=where["user"],
                           key_filename=where["keys"], allow_agent=self.settings.allow_agent,
                           look_for_keys=not where["keys"], timeout=timeout, banner_timeout=timeout,
                           auth_timeout=timeout, sock=sock)
        except paramiko.BadHostKeyException as error:
            client.close()
            raise TransportError(
                f"{self.host}: host key mismatch ({error.key.get_name()} {error.key.get_fingerprint().hex()} "
                f"offered, known_hosts has another); if the host was re-installed, remove its old "
                f"entry with `ssh-keygen -R {_known_name(where)}`") from None
        except paramiko.AuthenticationException:
            client.close()
            raise TransportError(
                f"{self.host}: authentication failed for user {where['user']!r}; check "
                f"--target-ssh-user and --target-private-key-path (or the ssh-agent)") from None
        except paramiko.SSHException as error:
            client.close()
            text = str(error)
            if "not found in known_hosts" in text:
                raise TransportError(
                    f"{self.host}: unknown host key; add it with `ssh-keyscan -p {where['port']} "
                    f"{where['hostname']} >> ~/.ssh/known_hosts` (after checking it) or pass "
                    f"--known-hosts / allow auto-adding") from None
            raise TransportError(f"{self.host}: SSH error: {text}") from None
        except (OSError, socket.timeout) as error:
            client.close()
            reason = error.strerror or str(error) or type(error).__name__
            raise TransportError(f"{self.host}: cannot connect to {where['hostname']}:{where['port']}: "
                                 f"{reason}; check the address, --ssh-port and that sshd runs") from None
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(15)   # notice a dead peer while idle in follow mode
        self._client = client

    def _load_host_keys(self, client, where: dict) -> None:
        files = [self.settings.known_hosts] if self.settings.known_hosts else \
            [where["known_hosts"] or "~/.ssh/known_hosts"]
        if not self.settings.known_hosts:
            try:
                client.load_system_host_keys()
            except OSError:
                pass
        for name in files:
            for path in str(name).split():
                path = os.path.expanduser(path)
                if os.path.isfile(path):
                    try:
                        client.get_host_keys().load(path)
                    except Exception as error:
                        raise TransportError(f"{self.host}: cannot read known hosts {path}: {error}") from None
                elif self.settings.known_hosts:
                    raise TransportError(f"{self.host}: known hosts file {path} does not exist; fix --known-hosts")
        # keys auto-added earlier in this run are known from now on: a changed key is a mismatch
        for name, key in self.settings.host_keys_seen.items():
            client.get_host_keys().add(name, key.get_name(), key)

    def close(self) -> None:
        self._shell = None
        if self._client is not None:
            try:
                self._client.close()
            finally:
                self._client = None

    # -- commands -------------------------------------------------------------------------------
    def run(self, command: str, timeout: float = EXEC_TIMEOUT) -> bytes:
        """Run a read-only command in the host's persistent shell; its stdout.

        Opening an SSH session costs the server a fork and a login (~0.1 s of CPU), more
        than a whole-file grep, so one `sh` per connection serves every command: each is
        run as `sh -c '<command>'` (a mistake in it cannot end the shell) and its output ends
        at a random marker line. Raises TransportError when the connection broke.
        """
        self.connect()
        token = secrets.token_hex(8)
        script = f"sh -c {shlex.quote(command)} </dev/null 2>/dev/null; printf '\\n%s\\n' {token}\n"
        try:
            shell = self._open_shell(timeout)
            shell.sendall(script.encode())
            data = self._read_until(shell, f"\n{token}\n".encode(), timeout)
        except (OSError, EOFError, socket.timeout, _ssh_exception()) as error:
            self.close()
            raise TransportError(f"{self.host}: connection lost: {error or type(error).__name__}") from None
        self.bytes_in += len(data) + len(token) + 2
        return data

    def _open_shell(self, timeout: float):
        if self._shell is not None and not self._shell.closed:
            return self._shell
        channel = self._client.get_transport().open_session(timeout=timeout)
        channel.exec_command("exec sh")
        # whatever a login script prints comes before this marker and is dropped
        token = secrets.token_hex(8)
        channel.sendall(f"printf '\\n%s\\n' {token}\n".encode())
        self._read_until(channel, f"\n{token}\n".encode(), timeout)
        self._shell = channel
        return channel

    @staticmethod
    def _read_until(channel, marker: bytes, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        buffer = bytearray()
        while not buffer.endswith(marker):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout(f"no answer within {timeout:g} s")
            channel.settimeout(remaining)
            chunk = channel.recv(READ_CHUNK)
            if not chunk:
                raise EOFError("the remote shell ended")
            buffer += chunk
        return bytes(buffer[:-len(marker)])

    def list_files(self, pattern: str) -> list[FileState]:
        # the glob is expanded by the remote shell on purpose (Tempest's target_logfiles is one)
        command = ("for f in " + pattern + "; do [ -f \"$f\" ] && stat -L -c '%i %s %n' -- \"$f\"; "
                   "done 2>/dev/null; true")
        states = []
        for line in self.run(command).decode("utf-8", "replace").splitlines():
            parts = line.split(" ", 2)
            if len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit():
                states.append(FileState(parts[2], int(parts[0]), int(parts[1])))
        return states

    def read(self, path: str, offset: int, length: int) -> bytes:
        if length <= 0:
            return b""
        quoted = shlex.quote(path)
        return self.run(f"tail -c +{offset + 1} -- {quoted} 2>/dev/null | head -c {length}")

    def open_follow(self, pattern: str, offsets: dict[int, int], from_end: bool,
                    interval: float) -> "FollowStream":
        """A remote reader on its own channel: resumes every file at its saved offset, then follows.

        `offsets` maps inode -> bytes already consumed; an inode not in it is read from 0
        (a file that appeared, or replaced a rotated one), or from its end on the very first
        pass when `from_end`. A file smaller than its offset was truncated: read from 0.
        """
        self.connect()
        token = secrets.token_hex(8)
        command = "exec sh -c " + shlex.quote(_follow_script(pattern, offsets, from_end, interval, token))
        try:
            channel = self._client.get_transport().open_session(timeout=EXEC_TIMEOUT)
            channel.exec_command(command)
        except (OSError, EOFError, socket.timeout, _ssh_exception()) as error:
            self.close()
            raise TransportError(f"{self.host}: connection lost: {error or type(error).__name__}") from None
        return FollowStream(self, channel, token)


# bytes of one file sent in one frame: a huge backlog after a long disconnect comes in
# bounded pieces, interleaved with the other files
FOLLOW_PIECE = 1024 * 1024


def _follow_script(pattern: str, offsets: dict[int, int], from_end: bool, interval: float, token: str) -> str:
    """POSIX sh that only reads: per pass one `stat` of the glob, then `tail -c +N | head -c L`
    for each file that grew, framed as `T F inode offset path` … `\\nT E` (an empty frame
    announces a file first seen, so its start offset is known too), and `T S` after each pass.
    The offsets live in shell variables keyed by inode, so a rotated file (new inode) starts
    at 0 and a renamed one keeps its place. Writing `T S` every pass also ends the
    reader within one pass once the channel is gone (SIGPIPE), so nothing lingers remotely."""
    saved = "".join(f"o_{int(inode)}={int(offset)}\n" for inode, offset in offsets.items())
    pause = f"{max(0.01, interval):.3f}"
    return (
        "# logwatch follow reader\n"
        f"T={token}; first={1 if from_end else 0}; P={FOLLOW_PIECE}\n"
        f"{saved}"
        "while :; do\n"
        "  more=0\n"
        "  set --\n"
        f"  for f in {pattern}; do [ -f \"$f\" ] && set -- \"$@\" \"$f\"; done\n"
        "  list=''\n"
        "  [ $# -gt 0 ] && list=$(stat -L -c '%i %s %n' -- \"$@\" 2>/dev/null)\n"
        "  while read -r i s f; do\n"
        "    case \"$i$s\" in ''|*[!0-9]*) continue;; esac\n"
        "    eval \"o=\\${o_$i-}\"\n"
        "    new=0\n"
        "    if [ -z \"$o\" ]; then new=1; if [ $first = 1 ]; then o=$s; else o=0; fi; fi\n"
        "    [ \"$s\" -lt \"$o\" ] && o=0\n"
        "    if [ \"$s\" -gt \"$o\" ] || [ $new = 1 ]; then\n"
        "      n=$((s - o)); if [ $n -gt $P ]; then n=$P; more=1; fi\n"
        "      printf '%s F %s %s %s\\n' \"$T\" \"$i\" \"$o\" \"$f\" || exit\n"
        "      [ $n -gt 0 ] && tail -c +$((o + 1)) -- \"$f\" 2>/dev/null | head -c $n\n"
        "      printf '\\n%s E\\n' \"$T\" || exit\n"
        "      o=$((o + n))\n"
        "    fi\n"
        "    eval \"o_$i=$o\"\n"
        "  done <<EOF\n"
        "$list\n"
        "EOF\n"
        "  first=0\n"
        "  printf '%s S\\n' \"$T\" || exit\n"
        f"  [ $more = 1 ] || sleep {pause} 2>/dev/null || sleep 1\n"
        "done\n")


@dataclass
class FollowPiece:
    """Bytes of one file as the remote reader sent them: `offset` is where `data` starts."""

    path: str
    inode: int
    offset: int
    data: bytes


class FollowStream:
    """Parses the follow reader's frames into pieces; `synced` once a whole pass arrived."""

    def __init__(self, transport: SSHTransport, channel, token: str) -> None:
        self.transport = transport
        self.channel = channel
        self._token = token.encode()
        self._trailer = b"\n" + self._token + b" E\n"
        self._buffer = bytearray()
        self._frame: tuple[str, int, int] | None = None     # (path, inode, offset) being received
        self._scanned = 0
        self.synced = False           # a whole pass arrived: every file's catch-up is in
        self.passes = 0

    def receive(self) -> list[FollowPiece]:
        """What arrived since the last call, without blocking. Raises TransportError when it ended."""
        chunks = []
        try:
            while self.channel.recv_ready():
                chunk = self.channel.recv(READ_CHUNK)
                if not chunk:
                    break
                chunks.append(chunk)
            while self.channel.recv_stderr_ready():
                self.channel.recv_stderr(READ_CHUNK)     # a login script's noise
            ended = self.channel.exit_status_ready() and not self.channel.recv_ready()
        except (OSError, EOFError, socket.timeout, _ssh_exception()) as error:
            raise TransportError(f"{self.transport.host}: stream lost: {error}") from None
        data = b"".join(chunks)
        self.transport.bytes_in += len(data)
        pieces = self._split(data)
        if ended or self.channel.closed:
            raise TransportError(f"{self.transport.host}: the follow reader ended (exit status "
                                 f"{self.channel.recv_exit_status() if ended else '?'})")
        return pieces

    def _split(self, data: bytes) -> list[FollowPiece]:
        pieces: list[FollowPiece] = []
        self._buffer += data
        while True:
            if self._frame is not None:
                # the trailer may straddle two reads: rescan only its length back
                at = self._buffer.find(self._trailer, max(0, self._scanned - len(self._trailer)))
                if at < 0:
                    self._scanned = len(self._buffer)
                    break
                path, inode, offset = self._frame
                pieces.append(FollowPiece(path, inode, offset, bytes(self._buffer[:at])))
                del self._buffer[:at + len(self._trailer)]
                self._frame, self._scanned = None, 0
                continue
            newline = self._buffer.find(b"\n")
            if newline < 0:
                break
            line = bytes(self._buffer[:newline])
            del self._buffer[:newline + 1]
            words = line.split(b" ", 4)
            if not words or words[0] != self._token:
                continue                              # not ours (a login script printed it)
            if words[1:2] == [b"S"]:
                self.synced = True
                self.passes += 1
            elif words[1:2] == [b"F"] and len(words) == 5 and words[2].isdigit() and words[3].isdigit():
                self._frame = (words[4].decode("utf-8", "replace"), int(words[2]), int(words[3]))
        return pieces

    def close(self) -> None:
        try:
            self.channel.close()
        except Exception:
            pass


def _ssh_exception():
    import paramiko
    return paramiko.SSHException


def _known_name(where: dict) -> str:
    return where["hostname"] if where["port"] == 22 else f"[{where['hostname']}]:{where['port']}"


def _local_user() -> str:
    import getpass
    return getpass.getuser()


class _RememberPolicy:
    """Auto-add, in memory only: this run trusts the first key seen and refuses a later change."""

    def __init__(self, seen: dict) -> None:
        self.seen = seen

    def missing_host_key(self, client, hostname, key) -> None:
        self.seen[hostname] = key
        client.get_host_keys().add(hostname, key.get_name(), key)
