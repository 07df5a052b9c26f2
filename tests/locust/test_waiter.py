"""The batched waiter against the embedded cloud: every wait settles from the changes-since
lists (no per-server fallback GET), also when our clock is far off the cloud's."""
from __future__ import annotations

import time
import types
import uuid

import gevent
import pytest

from novastress_locust import waiter as waiter_module
from novastress_locust.waiter import ACTIVE, DELETED, BatchedServerWaiter, WaitError

SERVERS = 12
INTERVAL = 0.2


class Compute:
    """The waiter's view of the Compute API: GETs over a keystoneauth session, expected statuses only."""

    def __init__(self, session, base_url: str) -> None:
        self.session = session
        self.url = f"{base_url}/compute/v2.1"
        self.headers = {"OpenStack-API-Version": "compute 2.37", "X-OpenStack-Nova-API-Version": "2.37"}

    def get(self, path: str, *, params: dict | None = None, expect: tuple[int, ...] = (200,), name=None):
        response = self.session.get(self.url + path, params=params, headers=self.headers, raise_exc=False)
        assert response.status_code in expect, (path, response.status_code, response.text[:300])
        return response

    def boot(self, name: str) -> str:
        body = {"server": {"name": name, "imageRef": self.image(), "flavorRef": "1", "networks": "none"}}
        response = self.session.post(f"{self.url}/servers", json=body, headers=self.headers)
        return response.json()["server"]["id"]

    def image(self) -> str:
        images = self.session.get(self.url.replace("/compute/v2.1", "/image/v2/images")).json()["images"]
        return images[0]["id"]

    def delete(self, server_id: str) -> None:
        self.session.delete(f"{self.url}/servers/{server_id}", headers=self.headers, raise_exc=False)


def wait_all(waiter: BatchedServerWaiter, ids: list[str], target: str, timeout: float = 60) -> list:
    greenlets = [gevent.spawn(waiter.wait, server_id, server_id, target, timeout) for server_id in ids]
    gevent.joinall(greenlets, timeout=timeout + 10)
    errors = [g.exception for g in greenlets if g.exception is not None]
    assert not errors, errors
    return [g.value for g in greenlets]


@pytest.fixture
def compute(cloud, member):
    return Compute(member, cloud.base_url)


@pytest.mark.parametrize("skew", [0.0, 45.0, -45.0], ids=["same-clock", "our-clock-ahead", "our-clock-behind"])
def test_every_wait_settles_from_the_lists(compute, monkeypatch, skew):
    # our clock off by `skew` seconds from the cloud's: the waiter learns the cloud's from Date headers
    skewed = types.SimpleNamespace(time=lambda: time.time() + skew, monotonic=time.monotonic)
    monkeypatch.setattr(waiter_module, "time", skewed)
    waiter = BatchedServerWaiter(compute, INTERVAL)
    prefix = f"waiter-{uuid.uuid4().hex[:6]}"
    ids = [compute.boot(f"{prefix}-{n}") for n in range(SERVERS)]
    try:
        started = time.monotonic()
        servers = wait_all(waiter, ids, ACTIVE)
        assert [s["status"] for s in servers] == [ACTIVE] * SERVERS
        for server_id in ids:
            compute.delete(server_id)
        wait_all(waiter, ids, DELETED)
        elapsed = time.monotonic() - started
    finally:
        waiter.stop()
        for server_id in ids:
            compute.delete(server_id)
    # nothing was left to the per-server fallback, and the lists were one per interval at most
    assert waiter.fallback_gets == 0
    assert waiter.waits == 2 * SERVERS
    assert waiter.polls <= elapsed / INTERVAL + 3
    if skew == 0.0:
        assert abs(waiter.clock_offset) < 2.0
    else:
        assert abs(waiter.clock_offset + skew) < 2.0


def test_a_server_that_never_gets_there_times_out_with_its_status(compute):
    waiter = BatchedServerWaiter(compute, INTERVAL)
    server_id = compute.boot(f"waiter-{uuid.uuid4().hex[:6]}")
    try:
        wait_all(waiter, [server_id], ACTIVE)
        with pytest.raises(WaitError, match="ACTIVE"):
            waiter.wait(server_id, "the-server", "SHUTOFF", timeout=1.0)
    finally:
        waiter.stop()
        compute.delete(server_id)
