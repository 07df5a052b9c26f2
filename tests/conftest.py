"""Shared fixtures: real embedded clouds over real HTTP."""
from __future__ import annotations

import pytest

from novastress_locust.fakecloud import EmbeddedCloud


@pytest.fixture(scope="session")
def cloud(tmp_path_factory):
    """One quiet embedded cloud for the session: fast transitions, no planted faults."""
    log_dir = tmp_path_factory.mktemp("cloud-logs")
    with EmbeddedCloud(log_dir=log_dir, faults="none", delay_scale=0.1, seed=1) as embedded:
        yield embedded


@pytest.fixture
def cloud_factory(tmp_path):
    """Start embedded clouds with custom settings; all stopped at the end of the test."""
    started: list[EmbeddedCloud] = []

    def start(**settings) -> EmbeddedCloud:
        settings.setdefault("log_dir", tmp_path / f"logs-{len(started)}")
        embedded = EmbeddedCloud(**settings).start()
        started.append(embedded)
        return embedded

    yield start
    for embedded in started:
        embedded.stop()


@pytest.fixture(scope="session")
def member(cloud):
    """A keystoneauth Session of the member user (project demo)."""
    return cloud.session()


@pytest.fixture(scope="session")
def admin(cloud):
    """A keystoneauth Session of the admin user (project admin)."""
    return cloud.session(admin=True)
