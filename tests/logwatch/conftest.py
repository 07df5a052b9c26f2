"""Fixtures for the log watcher: user keys and real sshd servers on loopback."""
from __future__ import annotations

import pytest

import sshd as sshd_helper


@pytest.fixture(scope="session")
def user_key(tmp_path_factory):
    """A private key (no passphrase) authorized on every test sshd."""
    assert sshd_helper.available(), "OpenSSH server not installed: apt-get install openssh-server " \
                                    "(scripts/test.sh does it as root)"
    return sshd_helper.make_key(tmp_path_factory.mktemp("user-key") / "id_ed25519")


@pytest.fixture
def sshd_factory(tmp_path, user_key):
    """Start sshd servers (each its own host key, port); all stopped at the end of the test."""
    started: list[sshd_helper.SSHServer] = []

    def start(**options) -> sshd_helper.SSHServer:
        options.setdefault("authorized", [user_key])
        server = sshd_helper.start_sshd(tmp_path / f"sshd-{len(started)}", **options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
