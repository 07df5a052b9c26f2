"""A real OpenSSH sshd on a loopback port, for tests.

    keys = make_user_key(tmp_path)                       # private key path; .pub beside it
    server = start_sshd(tmp_path / "a", authorized=[keys])
    known_hosts = write_known_hosts(tmp_path / "known_hosts", [server])
    ...
    server.stop()

Runs as the current user (root in CI): `StrictModes no`, `UsePAM no`, keys only.
"""
from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"


def available() -> bool:
    return os.path.exists(SSHD) and os.path.exists(SSH_KEYGEN)


def make_key(path: Path, kind: str = "ed25519") -> Path:
    """A fresh key pair without passphrase; returns the private key path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        subprocess.run([SSH_KEYGEN, "-q", "-t", kind, "-N", "", "-C", "novastress-test", "-f", str(path)],
                       check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    return path


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]


@dataclass
class SSHServer:
    address: str
    port: int
    host_key: Path
    workdir: Path
    process: subprocess.Popen
    user: str

    def host_key_line(self) -> str:
        """known_hosts line for this server (`[addr]:port type base64`)."""
        kind, blob = self.host_key.with_suffix(".pub").read_text().split()[:2]
        return f"[{self.address}]:{self.port} {kind} {blob}"

    @property
    def target(self) -> str:
        return f"{self.address}:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_sshd(workdir: Path, authorized: list[Path], address: str = "127.0.0.1", port: int | None = None,
               host_key: Path | None = None, setenv: dict[str, str] | None = None,
               timeout: float = 10.0) -> SSHServer:
    """Start sshd -D on address:port (a free port when None); returns once it answers with a banner.

    `setenv` variables reach every session (sshd's SetEnv): two servers on one machine can
    then point the same glob (`$LOGDIR/*.log`) at different directories, like two hosts.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    host_key = make_key(host_key or workdir / "ssh_host_ed25519_key")
    keys_file = workdir / "authorized_keys"
    keys_file.write_text("".join(Path(str(k) + ".pub").read_text() for k in authorized))
    port = port or free_port(address)
    config = workdir / "sshd_config"
    config.write_text(
        f"ListenAddress {address}\nPort {port}\nHostKey {host_key}\n"
        f"AuthorizedKeysFile {keys_file}\nPidFile {workdir / 'sshd.pid'}\n"
        "PermitRootLogin prohibit-password\nPubkeyAuthentication yes\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nStrictModes no\nUsePAM no\nLogLevel ERROR\n"
        "MaxSessions 50\nMaxStartups 50\nSubsystem sftp internal-sftp\n"
        + "".join(f"SetEnv {name}={value}\n" for name, value in (setenv or {}).items()))
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", exist_ok=True)      # privilege separation directory
    log = open(workdir / "sshd.log", "wb")
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config), "-p", str(port)],
                               stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    server = SSHServer(address, port, host_key, workdir, process, getpass.getuser())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with socket.create_connection((address, port), timeout=1) as probe:
                if probe.recv(64).startswith(b"SSH-"):
                    return server
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"sshd did not start: {(workdir / 'sshd.log').read_text(errors='replace')[-500:]}")


def write_known_hosts(path: Path, servers: list[SSHServer]) -> Path:
    Path(path).write_text("".join(server.host_key_line() + "\n" for server in servers))
    return Path(path)
