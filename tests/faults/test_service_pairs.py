"""Every fault action on every service of the embedded cloud, through its admin endpoint as
`--fault` drives it: what a real cloud's service shows while it is down or frozen (an API's 503
or its requests waiting, the work that waits for it), and that it is back after."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from novastress_locust.faultspec import ACTIONS, SERVICES
from novastress_locust.fakecloud import EmbeddedCloud

from fault_helpers import Api
from waiting import wait_until

API_PATHS = {"nova-api": "/compute/v2.1/", "placement": "/placement/", "glance": "/image/",
             "neutron": "/networking/", "keystone": "/identity/v3"}
COMPUTE = {"OpenStack-API-Version": "compute 2.37"}


class Cloud:
    """One quiet embedded cloud, an admin token taken once (Keystone itself is stopped here) and
    one ACTIVE server whose reboots show whether the work of its services goes on."""

    def __init__(self, cloud: EmbeddedCloud) -> None:
        self.cloud = cloud
        self.admin = cloud.session(admin=True)
        self.token = self.admin.get_token()
        self.api = Api(cloud, self.admin)
        self.server = self.api.server("ns-pairs-1-server")
        self.host = self.show(self.server["id"])["OS-EXT-SRV-ATTR:host"]
        self.pending: str | None = None       # a boot held while the scheduler was down

    def logged(self, text: str) -> int:
        return sum(path.read_text().count(text) for path in Path(self.cloud.log_dir).glob("*.log"))

    def act(self, verb: str, service: str) -> dict:
        host = self.host if service == "nova-compute" else ""
        response = requests.post(f"{self.cloud.base_url}/fakecloud/services", timeout=10,
                                 json={"action": verb, "service": service, "host": host},
                                 headers={"X-Auth-Token": self.token})
        assert response.status_code == 200, response.text
        return response.json()

    def get(self, path: str, timeout: float = 5) -> requests.Response:
        return requests.get(f"{self.cloud.base_url}{path}", timeout=timeout,
                            headers={"X-Auth-Token": self.token, **COMPUTE})

    def show(self, server_id: str) -> dict:
        response = self.get(f"/compute/v2.1/servers/{server_id}")
        assert response.status_code == 200, response.text
        return response.json()["server"]

    def reboot(self) -> None:
        response = requests.post(f"{self.cloud.base_url}/compute/v2.1/servers/{self.server['id']}/action",
                                 json={"reboot": {"type": "SOFT"}}, timeout=5,
                                 headers={"X-Auth-Token": self.token, **COMPUTE})
        assert response.status_code == 202, response.text

    def boot(self) -> str:
        return self.api.server("ns-pairs-1-boot", wait=False)["id"]


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    with EmbeddedCloud(log_dir=tmp_path_factory.mktemp("pairs-logs"), faults="none", delay_scale=0.1,
                       seed=3) as cloud:
        yield Cloud(cloud)


def _held(pairs: Cloud, service: str) -> None:
    """While `service` is down or frozen: what waits for it waits."""
    if service == "nova-scheduler":
        booted = pairs.pending = pairs.boot()          # deleted once the scheduler is back
        time.sleep(0.6)                                # a build takes 0.05-0.15 s here
        server = pairs.show(booted)
        assert server["status"] == "BUILD" and not server.get("OS-EXT-SRV-ATTR:host"), server
        return
    pairs.reboot()
    time.sleep(0.6)                                    # a reboot takes 0.02-0.08 s here
    assert pairs.show(pairs.server["id"])["status"] == "REBOOT"


def _down(pairs: Cloud, service: str, frozen: bool) -> None:
    if service in API_PATHS:
        if frozen:
            with pytest.raises(requests.exceptions.Timeout):
                pairs.get(API_PATHS[service], timeout=0.5)
        else:
            assert pairs.get(API_PATHS[service]).status_code == 503
        return
    if service == "database":
        if frozen:          # every API's requests wait on it
            with pytest.raises(requests.exceptions.Timeout):
                pairs.get("/compute/v2.1/servers", timeout=0.5)
        else:
            assert pairs.get("/compute/v2.1/servers").status_code == 500
        return
    _held(pairs, service)


def _back(pairs: Cloud, service: str) -> None:
    if service in API_PATHS:
        wait_until(lambda: pairs.get(API_PATHS[service]).status_code < 500, f"{service} answering", timeout=5)
    pending = pairs.pending
    if pending:
        wait_until(lambda: pairs.show(pending)["status"] == "ACTIVE", "the held boot ACTIVE", timeout=10)
        pairs.admin.delete(f"{pairs.api.compute}/servers/{pending}", headers=COMPUTE)
        pairs.pending = None
    wait_until(lambda: pairs.show(pairs.server["id"])["status"] == "ACTIVE", "the server ACTIVE", timeout=10)
    assert pairs.get("/compute/v2.1/servers").status_code == 200


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("action", ACTIONS)
def test_each_action_on_each_service(pairs, action, service):
    stopped = pairs.logged("Caught SIGTERM, stopping children") + pairs.logged("Service process killed (SIGKILL)")
    steps = {"restart": [], "kill": ["kill"], "stop": ["stop"], "start": ["stop"], "freeze": ["freeze"]}[action]
    for verb in steps:
        assert pairs.act(verb, service)["state"] == ("frozen" if verb == "freeze" else "stopped")
    if steps:
        _down(pairs, service, frozen=action == "freeze")
    restore = {"restart": "restart", "freeze": "thaw"}.get(action, "start")
    assert pairs.act(restore, service)["state"] == "running"
    _back(pairs, service)
    # its log says it went down (SIGTERM or SIGKILL), but for a freeze
    after = pairs.logged("Caught SIGTERM, stopping children") + pairs.logged("Service process killed (SIGKILL)")
    assert after == stopped + (0 if action == "freeze" else 1)
