"""Shared fixtures: real embedded clouds over real HTTP."""
from __future__ import annotations

# Locust monkey-patches with gevent when it is imported, and that must happen before `ssl` is
# imported (gevent#1016). Test modules import locust-based code in any order, so the whole
# test process is patched first, exactly as a locust process is.
from gevent import monkey

monkey.patch_all()

import pytest  # noqa: E402

from novastress_locust.fakecloud import EmbeddedCloud  # noqa: E402


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
