"""The batched waiter against the embedded cloud: every wait settles from the changes-since
lists (no per-server fallback GET), also when our clock is far off the cloud's."""
from __future__ import annotations

import time
import types
import uuid

import gevent
import pytest

from novastress_locust import requestlog
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


@pytest.mark.parametrize("kind", ["batched", "per-server"])
def test_a_wait_says_when_the_server_changed_closer_than_the_poll_that_saw_it(cloud_factory, kind):
    """The embedded cloud's ground truth (to the µs; its API, like Nova's, shows whole seconds):
    the time a wait gives for the change lies within the poll gap around it, and it is on average
    much closer to the truth than the moment the user woke (today's ATOMIC end)."""
    embedded = cloud_factory(faults="none", delay_scale=1.0, seed=3)
    compute = Compute(embedded.session(), embedded.base_url)
    admin = embedded.session(admin=True)
    interval = 1.0
    waiter = (BatchedServerWaiter(compute, interval) if kind == "batched"
              else waiter_module.PerServerWaiter(compute, interval))
    prefix = f"timing-{uuid.uuid4().hex[:6]}"
    woke, told, sent = {}, {}, {}

    def wait(server_id: str, target: str) -> None:
        step = requestlog.Step()
        waiter.wait(server_id, server_id, target, 60, since=sent[server_id, target], step=step)
        woke[server_id, target] = time.time()
        told[server_id, target] = woke[server_id, target] - step.late

    ids = []
    for n in range(12):
        before = time.time()
        ids.append(compute.boot(f"{prefix}-{n}"))
        sent[ids[-1], ACTIVE] = before
    try:
        gevent.joinall([gevent.spawn(wait, server_id, ACTIVE) for server_id in ids], raise_error=True)
        # deletes spread over a second, so they do not all change at one point of the poll gap
        for server_id in ids:
            sent[server_id, DELETED] = time.time()
            compute.delete(server_id)
            gevent.sleep(0.08)
        gevent.joinall([gevent.spawn(wait, server_id, DELETED) for server_id in ids], raise_error=True)
    finally:
        waiter.stop()
    told_errors, woke_errors = [], []
    for server_id in ids:
        times = admin.get(f"{embedded.base_url}/fakecloud/servers/{server_id}/times").json()["times"]
        for target, truth in ((ACTIVE, times["launched_at"]), (DELETED, times["terminated_at"])):
            assert woke[server_id, target] >= truth
            told_errors.append(abs(told[server_id, target] - truth))
            woke_errors.append(woke[server_id, target] - truth)
    gap = interval * (1 + waiter_module.PHASE_SLIP) + 0.3      # a poll gap and its requests' time
    assert max(told_errors) <= gap / 2 + 0.3, sorted(told_errors)
    assert sum(told_errors) < 0.7 * sum(woke_errors), (sorted(told_errors), sorted(woke_errors))


def test_novas_updated_stamps_are_read_as_utc_and_anything_else_as_unknown():
    # Nova writes `updated` with a trailing Z, which Python 3.10's fromisoformat alone refuses
    assert waiter_module._stamp("2026-12-04T20:06:13Z") == 1796414773.0
    assert waiter_module._stamp("2026-12-04T20:06:13") == 1796414773.0
    assert waiter_module._stamp("2026-12-04T21:06:13+01:00") == 1796414773.0
    assert waiter_module._stamp(None) is None
    assert waiter_module._stamp("yesterday") is None
