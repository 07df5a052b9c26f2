"""Floating IPs and guests (Tempest's tempest.stress.actions.ssh_floating).

    ssh_floating: associate a floating IP, check the guest answers there, disassociate.

Reachability is checked the way Tempest did: a TCP connect to the guest's SSH port
(`--guest-ssh-port`, default 22) and an ICMP echo where this host allows unprivileged ICMP
sockets (else that check is skipped once, with a log line). paramiko is imported only when
an SSH session is needed: after Locust's gevent patching, or its banner reads would block.
"""
from __future__ import annotations

import io
import logging
import os
import socket
import struct
import time

import gevent

from ..user import NovaUser
from . import Needs, stress_action
from .servers import boot_args, kept

LOG = logging.getLogger("novastress")
CHECKS = ("check_port_ssh", "check_icmp_echo")


class GuestError(Exception):
    """A guest did not answer as expected; str() is one line."""


def guest_port(user: NovaUser) -> int:
    """--guest-ssh-port, else the embedded cloud's guest port when this run started it, else 22."""
    embedded = user.state.embedded
    return int(getattr(user.options, "guest_ssh_port", None)
               or (embedded is not None and embedded.info.get("guest_ssh_port")) or 22)


def guest_ports(user: NovaUser) -> tuple[int, ...]:
    """The ports a guest's security group opens: 22 and the guest SSH port."""
    return tuple(sorted({22, guest_port(user)}))


def tcp_open(address: str, port: int, timeout: float) -> bool:
    """True when a TCP connection to address:port succeeds."""
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def icmp_echo(address: str, timeout: float) -> bool | None:
    """One ICMP echo through an unprivileged ICMP socket; None when the host does not allow one."""
    try:
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
    except OSError:  # net.ipv4.ping_group_range excludes us, or no ICMP sockets at all
        return None
    with probe:
        probe.settimeout(timeout)
        ident = os.getpid() & 0xFFFF
        payload = b"novastress"
        checksum = _checksum(struct.pack("!BBHHH", 8, 0, 0, ident, 1) + payload)
        try:
            probe.sendto(struct.pack("!BBHHH", 8, 0, checksum, ident, 1) + payload, (address, 0))
            reply, _ = probe.recvfrom(1024)
        except OSError:
            return False
        return bool(reply) and reply[0] == 0   # echo reply


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def until(what: str, check, timeout: float, interval: float) -> None:
    """Call `check()` every interval until it is true; GuestError after timeout (Tempest's call_until_true)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            raise GuestError(f"{what} after {timeout:g} s")
        gevent.sleep(interval)


class GuestShell:
    """An SSH session to a guest (user from --guest-ssh-user; the boot keypair or a password)."""

    def __init__(self, address: str, port: int, username: str, private_key: str | None = None,
                 password: str | None = None, timeout: float = 10.0) -> None:
        import paramiko  # after gevent patching (see the module docstring)

        self.address = address
        self.client = paramiko.SSHClient()
        self.client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        pkey = paramiko.RSAKey.from_private_key(io.StringIO(private_key)) if private_key else None
        try:
            self.client.connect(address, port=port, username=username, pkey=pkey, password=password,
                                timeout=timeout, banner_timeout=timeout, auth_timeout=timeout,
                                look_for_keys=False, allow_agent=False)
        except (paramiko.SSHException, OSError) as exc:
            self.client.close()
            raise GuestError(f"SSH to {username}@{address}:{port} failed: {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''}") from None

    def run(self, command: str, timeout: float = 10.0) -> str:
        _, stdout, stderr = self.client.exec_command(command, timeout=timeout)
        status = stdout.channel.recv_exit_status()
        output = stdout.read().decode(errors="replace")
        if status != 0:
            raise GuestError(f"{command!r} on {self.address} exited {status}: "
                             f"{stderr.read().decode(errors='replace').strip()[:200]}")
        return output

    def close(self) -> None:
        self.client.close()


def _check_floating(user: NovaUser, check: str, address: str, timeout: float, interval: float) -> None:
    port = guest_port(user)
    with user.atomic(check):
        if check == "check_port_ssh":
            until(f"cannot connect to the SSH port {address}:{port}",
                  lambda: tcp_open(address, port, min(5.0, max(interval, 1.0))), timeout, interval)
            return
        answered = icmp_echo(address, 1.0)
        if answered is None:
            if not getattr(user.state, "icmp_skip_logged", False):
                user.state.icmp_skip_logged = True
                LOG.warning("novastress: this host allows no unprivileged ICMP socket "
                            "(net.ipv4.ping_group_range); check_icmp_echo is skipped")
            return
        until(f"cannot ping {address}", lambda: answered or icmp_echo(address, 1.0), timeout, interval)


def _validate(kwargs: dict) -> str | None:
    unknown = [check for check in kwargs.get("verify", ()) if check not in CHECKS]
    return f"kwarg 'verify' has unknown check {unknown[0]!r} (known: {', '.join(CHECKS)})" if unknown else None


@stress_action(tempest=("tempest.stress.actions.ssh_floating.FloatingStress",), services=("compute", "network"),
               types=("network", "floating_ip"), validate=_validate, needs=Needs(floating_ip=True))
def ssh_floating(user: NovaUser, *, vm_extra_args: dict = {}, new_vm: bool = False,  # noqa: B006 (read only)
                 new_sec_group: bool = False, new_floating: bool = False, reboot: bool = False,
                 floating_pool: str | None = None, verify: list = list(CHECKS), check_timeout: float = 120,
                 check_interval: float = 1, wait_after_vm_create: bool = True,
                 wait_for_disassociate: bool = True) -> None:
    """Associate a floating IP to a server, check the guest answers on it, disassociate."""
    ports = guest_ports(user)
    group = user.create_security_group(ports) if new_sec_group else \
        kept(user, "ssh_floating.secgroup", lambda: user.create_security_group(ports))
    fip = user.allocate_floating_ip(floating_pool) if new_floating else \
        kept(user, "ssh_floating.fip", lambda: user.allocate_floating_ip(floating_pool), name_key="description")
    # the server must be ACTIVE with a port before a floating IP can point at it, so it is
    # always waited for; wait_after_vm_create is accepted for Tempest's files
    server = user.boot_server(**boot_args(vm_extra_args, group)) if new_vm else \
        kept(user, "ssh_floating.server", lambda: user.boot_server(**boot_args(vm_extra_args, group)))
    if reboot:
        user.server_action(server, {"reboot": {"type": "HARD"}}, "ACTIVE", atomic="hard_reboot")
    user.associate_floating_ip(fip, server)
    for check in verify:
        _check_floating(user, check, fip["floating_ip_address"], check_timeout, check_interval)
    user.disassociate_floating_ip(fip, wait=wait_for_disassociate)
    if new_vm:
        user.delete_server(server)
    if new_floating:
        user.release_floating_ip(fip)
    if new_sec_group:
        user.delete_security_group(group)


def ssh_shell(user: NovaUser, address: str, keypair: dict | None) -> GuestShell:
    """An SSH session to the guest at `address` with the boot keypair."""
    with user.atomic("ssh_connect"):
        return GuestShell(address, guest_port(user), user.options.guest_ssh_user,
                          private_key=(keypair or {}).get("private_key"))


__all__ = ["ssh_floating", "GuestShell", "GuestError", "guest_port", "tcp_open", "icmp_echo"]
