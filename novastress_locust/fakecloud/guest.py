"""Simulated guests: a running server answers SSH on its floating IPs.

A server that is ACTIVE (running) and has an ACTIVE floating IP listens for SSH on
`<floating ip>:<guest port>` (a 127.X.y.z loopback address), speaking the real SSH
protocol (paramiko) as a CirrOS guest would: login with the server's keypair or the
CirrOS password, a few shell commands, and a `/proc/partitions` that follows the
server's attached volumes. Compute and network call `sync(server_id)` whenever a
server's state, floating IPs or volumes change; the listener set follows.

    cloud.guests.sync(server.id)     # after any change of the server or its floating IPs
    cloud.guests.port                # where clients connect (22 when it can be bound)
"""
from __future__ import annotations

import errno
import fnmatch
import hmac
import ipaddress
import re
import shlex
import socket
import time
import traceback
from dataclasses import dataclass, field

import gevent
import paramiko
from gevent.pool import Pool
from gevent.server import StreamServer

LOGGER = "novastress.fakecloud.guest"
GUEST_USER = "cirros"
GUEST_PASSWORD = "gocubsgo"  # CirrOS's published default password, not a secret
DEFAULT_PORT = 22
SSH_VERSION = "SSH-2.0-dropbear_2022.83"  # what CirrOS 0.6 runs
KERNEL = "5.15.0-71-generic #78-Ubuntu SMP Tue Apr 18 09:00:29 UTC 2023"
# every session is bounded: connections per listener, time, channels, failed logins, input
MAX_CONNECTIONS = 64
HANDSHAKE_SECONDS = 15.0
SESSION_SECONDS = 3600.0
IDLE_SECONDS = 60.0
MAX_CHANNELS = 16          # open at once in one session
MAX_AUTH_FAILURES = 6
MAX_LINE = 4096
MAX_SHELL_COMMANDS = 1000
VIRTIO_MAJOR = 253
BLOCKS_PER_GB = 1024 * 1024  # /proc/partitions counts 1K blocks


def _bind_error(port: int, probe_address: str) -> OSError | None:
    """Why `port` cannot be bound on a floating IP address, or None when it can."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((probe_address, port))
        return None
    except OSError as exc:
        return exc
    finally:
        probe.close()


def _free_port(probe_address: str) -> int:
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.bind((probe_address, 0))
        return probe.getsockname()[1]
    finally:
        probe.close()


def resolve_port(requested: int | None, public_cidr: str, preferred: int = DEFAULT_PORT) -> tuple[int, str]:
    """(guest SSH port, note): the requested port, else `preferred` (22), else a free port, as
    bound on the floating-IP subnet's gateway (never handed out, so probing it is harmless).

    ValueError with one clear line when a requested port cannot be bound.
    """
    probe_address = str(ipaddress.ip_network(public_cidr).network_address + 1)
    if requested is not None:
        if not 0 < requested < 65536:
            raise ValueError(f"--guest-ssh-port {requested}: use a port in 1-65535")
        error = _bind_error(requested, probe_address)
        if error is not None:
            why = ("binding it needs root or CAP_NET_BIND_SERVICE"
                   if error.errno in (errno.EACCES, errno.EPERM) else error.strerror)
            raise ValueError(f"guest SSH port {requested} cannot be bound on {probe_address} ({why}); "
                             "pass --guest-ssh-port with a free port above 1023, e.g. 2222")
        return requested, ""
    error = _bind_error(preferred, probe_address)
    if error is None:
        return preferred, ""
    port = _free_port(probe_address)
    why = ("binding it needs root" if error.errno in (errno.EACCES, errno.EPERM)
           else error.strerror or "in use")
    return port, (f"port {preferred} cannot be bound ({why}); guests answer SSH on port {port} "
                  "(choose with --guest-ssh-port)")


@dataclass(eq=False)
class Listener:
    """One SSH listener at a floating IP, and the sessions it accepted."""

    address: str
    server: StreamServer | None = None
    transports: set = field(default_factory=set)
    closed: bool = False


@dataclass(eq=False)
class Guest:
    """What the guest of one server keeps: the key injected at boot and its listeners."""

    server_id: str
    authorized_key: str | None = None   # base64 blob of the keypair's public key
    listeners: dict[str, Listener] = field(default_factory=dict)


class GuestManager:
    """The guests of every server: `sync` opens and closes their SSH listeners."""

    def __init__(self, cloud) -> None:
        self.cloud = cloud
        self.port, self.note = resolve_port(cloud.config.guest_ssh_port, cloud.network.public_cidr)
        # one host key for every guest, made at start (ECDSA: generating it takes a millisecond)
        self.host_key = paramiko.ECDSAKey.generate()
        self.guests: dict[str, Guest] = {}
        self.closed = False

    def info(self) -> dict:
        """What clients need to reach the guests (GET /fakecloud)."""
        info = {"guest_ssh_port": self.port, "guest_ssh_user": GUEST_USER,
                "floating_ip_cidr": self.cloud.network.public_cidr,
                "guest_ssh_host_key": f"{self.host_key.get_name()} {self.host_key.get_base64()}"}
        if self.note:
            info["guest_ssh_note"] = self.note
        return info

    # -- following the server -------------------------------------------------
    def sync(self, server_id: str) -> None:
        """Make the server's listeners match its state and floating IPs; never raises."""
        try:
            self._sync(server_id)
        except Exception:  # the guest is a side show: it must never break a state transition
            self._log("WARNING", f"guest of {server_id} could not follow its server",
                      server_id, traceback.format_exc().rstrip().splitlines())

    def _sync(self, server_id: str) -> None:
        server = self.cloud.compute.servers.get(server_id)
        guest = self.guests.get(server_id)
        if server is None or server.deleted:
            if guest is not None:
                self._close_all(guest)
                del self.guests[server_id]
            return
        if guest is None:
            guest = self.guests[server_id] = Guest(server_id, self._authorized_key(server))
        wanted: set[str] = set()
        if not self.closed and server.status == "ACTIVE" and server.power_state == 1:
            wanted = {fip["floating_ip_address"] for fip in self.cloud.network.floating_ips_of(server_id)
                      if fip["status"] == "ACTIVE"}
        for address in [a for a in guest.listeners if a not in wanted]:
            self._close(guest.listeners.pop(address))
        for address in sorted(wanted - set(guest.listeners)):
            listener = self._open(guest, address, server)
            if listener is not None:
                guest.listeners[address] = listener

    def _authorized_key(self, server) -> str | None:
        """The keypair's public key as it was at boot (cloud-init injects it once)."""
        if not server.key_name:
            return None
        keypair = self.cloud.compute.keypairs.get(server.user_id, {}).get(server.key_name)
        parts = keypair.public_key.split() if keypair else []
        return parts[1] if len(parts) >= 2 else None

    def _open(self, guest: Guest, address: str, server) -> Listener | None:
        listener = Listener(address)

        def handle(sock, peer) -> None:
            self._serve(guest, listener, sock)
        listener.server = StreamServer((address, self.port), handle, spawn=Pool(MAX_CONNECTIONS))
        try:
            listener.server.start()
        except OSError as exc:
            # e.g. another embedded cloud on this machine holds the same address
            self._log("WARNING", f"guest SSH on {address}:{self.port} could not listen: {exc}", guest.server_id,
                      host=server.host)
            return None
        return listener

    def _close(self, listener: Listener) -> None:
        """Stop accepting and drop open sessions, as a guest that stops or loses its address."""
        listener.closed = True
        try:
            listener.server.close()
        except Exception:
            pass
        for transport in list(listener.transports):
            gevent.spawn(_quietly_close, transport)  # closing may wait on the session's greenlet
        listener.transports.clear()

    def _close_all(self, guest: Guest) -> None:
        for listener in guest.listeners.values():
            self._close(listener)
        guest.listeners.clear()

    def close(self) -> None:
        """Close every listener (cloud shutdown)."""
        self.closed = True
        for guest in self.guests.values():
            self._close_all(guest)
        self.guests.clear()

    def _log(self, level: str, message: str, server_id: str, trace: list[str] | None = None,
             host: str | None = None) -> None:
        try:
            log = self.cloud.logs.compute(host or self.cloud.compute_hosts[0])
            log.write(level, LOGGER, message, None, instance=server_id, traceback=trace)
        except Exception:
            pass

    # -- SSH sessions ----------------------------------------------------------
    def _serve(self, guest: Guest, listener: Listener, sock) -> None:
        transport = None
        try:
            # small request/reply packets: without this, Nagle and delayed ACKs add 40 ms to each
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            transport = paramiko.Transport(sock)
            transport.local_version = SSH_VERSION
            transport.banner_timeout = transport.handshake_timeout = HANDSHAKE_SECONDS
            transport.auth_timeout = HANDSHAKE_SECONDS
            transport.add_server_key(self.host_key)
            listener.transports.add(transport)
            if listener.closed:
                return  # accepted just before the guest lost its address or stopped
            interface = GuestSSH(self, guest, transport)
            transport.start_server(server=interface)
            deadline = time.monotonic() + SESSION_SECONDS
            # channels are served from the interface's callbacks; this loop bounds the session and
            # holds the accepted channels (paramiko closes a channel nobody references)
            while transport.is_active() and time.monotonic() < deadline:
                channel = transport.accept(timeout=1.0)
                if channel is not None:
                    interface.channels.append(channel)
        except (paramiko.SSHException, EOFError, OSError):
            pass  # a client that went away or spoke no SSH
        except Exception:
            self._log("WARNING", "guest SSH session failed", guest.server_id,
                      traceback.format_exc().rstrip().splitlines())
        finally:
            if transport is not None:
                listener.transports.discard(transport)
                _quietly_close(transport)
            try:
                sock.close()
            except OSError:
                pass

    def run(self, server_id: str, command: str) -> tuple[str, str, int]:
        """(stdout, stderr, exit status) of one shell command line in the guest."""
        server = self.cloud.compute.servers.get(server_id)
        if server is None:
            return "", "", 255
        return Shell(server, self.cloud.volume).run(command)


def _quietly_close(transport: paramiko.Transport) -> None:
    try:
        transport.close()
    except Exception:
        pass


class GuestSSH(paramiko.ServerInterface):
    """Authentication and channels of one guest session."""

    def __init__(self, manager: GuestManager, guest: Guest, transport: paramiko.Transport) -> None:
        self.manager = manager
        self.guest = guest
        self.transport = transport
        self.channels: list[paramiko.Channel] = []   # accepted and maybe still open
        self.failures = 0
        self.pty_channels: set[int] = set()

    def get_allowed_auths(self, username: str) -> str:
        return "publickey,password"

    def _verdict(self, accepted: bool) -> int:
        if accepted:
            return paramiko.AUTH_SUCCESSFUL
        self.failures += 1
        if self.failures >= MAX_AUTH_FAILURES:
            gevent.spawn(_quietly_close, self.transport)
        return paramiko.AUTH_FAILED

    def check_auth_password(self, username: str, password: str) -> int:
        return self._verdict(username == GUEST_USER
                             and hmac.compare_digest(password.encode(), GUEST_PASSWORD.encode()))

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        wanted = self.guest.authorized_key
        return self._verdict(username == GUEST_USER and wanted is not None
                             and hmac.compare_digest(key.get_base64().encode(), wanted.encode()))

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind != "session":
            return paramiko.OPEN_FAILED_UNKNOWN_CHANNEL_TYPE
        self.channels = [c for c in self.channels if not c.closed]
        if len(self.channels) >= MAX_CHANNELS:
            return paramiko.OPEN_FAILED_RESOURCE_SHORTAGE
        return paramiko.OPEN_SUCCEEDED

    def check_channel_pty_request(self, channel, term, width, height, pixelwidth, pixelheight,
                                  modes) -> bool:
        self.pty_channels.add(channel.get_id())
        return True

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        text = command.decode("utf-8", "replace") if isinstance(command, bytes) else str(command)
        gevent.spawn(self._exec, channel, text)
        return True

    def check_channel_shell_request(self, channel: paramiko.Channel) -> bool:
        gevent.spawn(self._shell, channel)
        return True

    def _exec(self, channel: paramiko.Channel, command: str) -> None:
        gevent.sleep(0)  # let the transport answer the exec request before any output
        try:
            stdout, stderr, status = self.manager.run(self.guest.server_id, command)
            if stdout:
                channel.sendall(stdout.encode())
            if stderr:
                channel.sendall_stderr(stderr.encode())
            channel.send_exit_status(status)
        except (OSError, EOFError, paramiko.SSHException):
            pass
        finally:
            channel.close()

    def _shell(self, channel: paramiko.Channel) -> None:
        """A minimal line-by-line shell: prompt, echo on a pty, `exit` ends it."""
        gevent.sleep(0)
        pty = channel.get_id() in self.pty_channels
        newline = "\r\n" if pty else "\n"
        status = 0
        try:
            channel.settimeout(IDLE_SECONDS)
            channel.sendall(b"$ ")
            pending = b""
            commands = 0
            deadline = time.monotonic() + SESSION_SECONDS
            while commands < MAX_SHELL_COMMANDS and time.monotonic() < deadline:
                data = channel.recv(1024)
                if not data:
                    break
                if pty:
                    channel.sendall(data.replace(b"\r", b"\r\n"))
                pending += data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
                if len(pending) > MAX_LINE and b"\n" not in pending:
                    pending = b""  # an endless line: drop it, as a full line buffer would
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    command = line.decode("utf-8", "replace").strip()
                    commands += 1
                    if command == "exit" or command.startswith("exit "):
                        argument = command[4:].strip()
                        status = int(argument) if argument.isdigit() else 0
                        return
                    stdout, stderr, status = self.manager.run(self.guest.server_id, command)
                    output = stdout + stderr
                    channel.sendall((output.replace("\n", newline) + "$ ").encode())
        except (OSError, EOFError, paramiko.SSHException):
            return
        finally:
            try:
                channel.send_exit_status(status)
                channel.close()
            except Exception:
                pass


class Shell:
    """The CirrOS commands a test or stress action runs, answered from the server's state."""

    def __init__(self, server, volume_api) -> None:
        self.server = server
        self.volume_api = volume_api

    def disks(self) -> list[tuple[str, int]]:
        """(name, size in 1K blocks) of vda and every attached volume, in name order."""
        root = max(1, int(getattr(self.server.flavor, "disk", 1) or 1)) * BLOCKS_PER_GB
        disks = {"vda": root}
        unnamed = []
        for volume_id, attachment in list(self.server.volumes.items()):
            volume = self.volume_api.get_volume(volume_id) if self.volume_api is not None else None
            blocks = int((volume or {}).get("size") or 1) * BLOCKS_PER_GB
            name = str(attachment.get("device") or "").rsplit("/", 1)[-1]
            # the guest kernel names virtio disks vdX; a device Nova named otherwise gets the next one
            if re.fullmatch(r"vd[a-z]", name) and name not in disks:
                disks[name] = blocks
            else:
                unnamed.append(blocks)
        letters = (f"vd{chr(c)}" for c in range(ord("b"), ord("z") + 1))
        for blocks in unnamed:
            name = next((n for n in letters if n not in disks), None)
            if name is not None:
                disks[name] = blocks
        return sorted(disks.items())

    def partitions(self) -> str:
        lines = ["major minor  #blocks  name", ""]
        for name, blocks in self.disks():
            minor = (ord(name[2]) - ord("a")) * 16
            lines.append(f"{VIRTIO_MAJOR:4d}  {minor:7d} {blocks:10d} {name}")
        return "\n".join(lines) + "\n"

    def run(self, command: str) -> tuple[str, str, int]:
        try:
            words = shlex.split(command)
        except ValueError as exc:
            return "", f"sh: syntax error: {exc}\n", 2
        if words[:1] == ["sudo"]:
            words = words[1:]  # the cirros user may sudo anything
        if not words:
            return "", "", 0
        name, args = words[0], words[1:]
        hostname = self.server.name
        if name == "true":
            return "", "", 0
        if name == "false":
            return "", "", 1
        if name == "hostname":
            return f"{hostname}\n", "", 0
        if name == "echo":
            newline = "\n"
            if args[:1] == ["-n"]:
                args, newline = args[1:], ""
            return " ".join(args) + newline, "", 0
        if name == "uname":
            fields = {"-s": "Linux", "-n": hostname, "-r": KERNEL.split()[0], "-m": "x86_64"}
            if "-a" in args:
                return f"Linux {hostname} {KERNEL} x86_64 GNU/Linux\n", "", 0
            unknown = [a for a in args if a not in fields]
            if unknown:
                return "", f"uname: unrecognized option: {unknown[0]}\n", 1
            return " ".join(fields[a] for a in (args or ["-s"])) + "\n", "", 0
        if name == "cat":
            return self._cat(args)
        if name == "ls":
            return self._ls(args)
        return "", f"sh: {name}: not found\n", 127

    def _cat(self, args: list[str]) -> tuple[str, str, int]:
        files = {"/proc/partitions": self.partitions, "/etc/hostname": lambda: f"{self.server.name}\n"}
        stdout, stderr, status = "", "", 0
        for path in args:
            if path in files:
                stdout += files[path]()
            else:
                stderr += f"cat: can't open '{path}': No such file or directory\n"
                status = 1
        return stdout, stderr, status

    def _ls(self, args: list[str]) -> tuple[str, str, int]:
        paths = [a for a in args if not a.startswith("-")]
        devices = [f"/dev/{name}" for name, _ in self.disks()]
        stdout, stderr, status = [], "", 0
        for pattern in paths or ["."]:
            if pattern == ".":
                continue  # the home directory is empty
            matched = sorted(d for d in devices if fnmatch.fnmatchcase(d, pattern))
            if not matched:
                stderr += f"ls: {pattern}: No such file or directory\n"
                status = 1
            stdout.extend(matched)
        return "".join(f"{line}\n" for line in stdout), stderr, status
