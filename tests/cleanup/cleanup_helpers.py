"""Make resources through the real APIs, run `novastress-cleanup`, and list what is left.

`leftovers()` is written against the APIs directly, not through novastress_locust.cleanup,
so a cleanup that misses something cannot also hide it from the test.
"""
from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from locust_runs import clean_env, cli_credentials  # noqa: F401  (tests/ is on sys.path)
from waiting import wait_until
from leftover import leftovers as shared_leftovers

ROOT = Path(__file__).resolve().parents[2]
CLEANUP = str(Path(sys.executable).with_name("novastress-cleanup"))
COMPUTE_HEADERS = {"OpenStack-API-Version": "compute 2.37"}


class Api:
    """One keystoneauth session and the embedded cloud's service URLs."""

    def __init__(self, cloud, session) -> None:
        self.cloud = cloud
        self.session = session
        base = cloud.base_url
        self.compute = f"{base}/compute/v2.1"
        self.network = f"{base}/networking/v2.0"
        self.volume = f"{base}/volume/v3"
        self.identity = f"{base}/identity/v3"
        self.image = f"{base}/image/v2"

    def get(self, url: str, **params) -> dict:
        response = self.session.get(url, params=params or None, headers=self._headers(url))
        assert response.status_code == 200, response.text
        return response.json()

    def _headers(self, url: str) -> dict:
        return COMPUTE_HEADERS if url.startswith(self.compute) else {}

    def post(self, url: str, body: dict) -> dict:
        response = self.session.post(url, json=body, headers=self._headers(url), raise_exc=False)
        assert response.status_code in (200, 201, 202), f"{url}: {response.status_code} {response.text}"
        return response.json() if response.content else {}

    # -- making things ------------------------------------------------------------------
    def server(self, name: str, wait: bool = True) -> dict:
        image = self.get(f"{self.image}/images")["images"][0]["id"]
        flavor = self.get(f"{self.compute}/flavors")["flavors"][0]["id"]
        server = self.post(f"{self.compute}/servers", {"server": {
            "name": name, "imageRef": image, "flavorRef": flavor, "networks": "none"}})["server"]
        if wait:
            self.wait(lambda: self.get(f"{self.compute}/servers/{server['id']}")["server"]["status"] == "ACTIVE")
        return server

    def floating_ip(self, description: str) -> dict:
        networks = self.get(f"{self.network}/networks")["networks"]
        public = next(n for n in networks if n["router:external"])
        return self.post(f"{self.network}/floatingips", {"floatingip": {
            "floating_network_id": public["id"], "description": description}})["floatingip"]

    def volume_(self, name: str) -> dict:
        volume = self.post(f"{self.volume}/volumes", {"volume": {"name": name, "size": 1}})["volume"]
        self.wait(lambda: self.get(f"{self.volume}/volumes/{volume['id']}")["volume"]["status"] == "available")
        return volume

    def snapshot(self, volume_id: str, name: str) -> dict:
        snapshot = self.post(f"{self.volume}/snapshots", {"snapshot": {"volume_id": volume_id,
                                                                       "name": name}})["snapshot"]
        self.wait(lambda: self.get(f"{self.volume}/snapshots/{snapshot['id']}")["snapshot"]["status"]
                  == "available")
        return snapshot

    def attach(self, server_id: str, volume_id: str) -> None:
        self.post(f"{self.compute}/servers/{server_id}/os-volume_attachments",
                  {"volumeAttachment": {"volumeId": volume_id}})
        self.wait(lambda: self.get(f"{self.volume}/volumes/{volume_id}")["volume"]["status"] == "in-use")

    def server_image(self, server_id: str, name: str) -> str:
        """createImage (2.45: the id in the body); the image's id once the snapshot is active."""
        response = self.session.post(f"{self.compute}/servers/{server_id}/action",
                                     json={"createImage": {"name": name}},
                                     headers={"OpenStack-API-Version": "compute 2.45"}, raise_exc=False)
        assert response.status_code == 202, response.text
        image_id = response.json()["image_id"]
        self.wait(lambda: self.get(f"{self.image}/images/{image_id}")["status"] == "active")
        self.wait(lambda: self.get(f"{self.compute}/servers/{server_id}")["server"]["OS-EXT-STS:task_state"] is None)
        return image_id

    def keypair(self, name: str) -> None:
        self.post(f"{self.compute}/os-keypairs", {"keypair": {"name": name}})

    def server_group(self, name: str) -> dict:
        return self.post(f"{self.compute}/os-server-groups",
                         {"server_group": {"name": name, "policies": ["anti-affinity"]}})["server_group"]

    def security_group(self, name: str) -> dict:
        return self.post(f"{self.network}/security-groups",
                         {"security_group": {"name": name}})["security_group"]

    @staticmethod
    def wait(condition, timeout: float = 30.0) -> None:
        wait_until(condition, "the resource's state", timeout, interval=0.1)


def isolated(cloud, admin: Api, name: str, password: str = "Isolated-pw-1") -> Api:
    """A project and user named like novastress's isolated tenants, and a session of that user."""
    from keystoneauth1 import session as ks_session
    from keystoneauth1.identity import v3
    project = admin.post(f"{admin.identity}/projects", {"project": {"name": f"{name}-project",
                                                                    "domain_id": "default"}})["project"]
    user = admin.post(f"{admin.identity}/users", {"user": {"name": f"{name}-user", "password": password,
                                                           "default_project_id": project["id"],
                                                           "domain_id": "default"}})["user"]
    roles = admin.get(f"{admin.identity}/roles")["roles"]
    member = next(r for r in roles if r["name"] == "member")
    response = admin.session.put(f"{admin.identity}/projects/{project['id']}/users/{user['id']}/roles/"
                                 f"{member['id']}")
    assert response.status_code == 204, response.text
    auth = v3.Password(auth_url=cloud.auth_url, username=user["name"], password=password,
                       project_name=project["name"], user_domain_name="Default",
                       project_domain_name="Default")
    return Api(cloud, ks_session.Session(auth=auth))


def leftovers(cloud, pattern: str) -> dict[str, list[str]]:
    """Everything in any project whose name (floating IPs: description) starts with pattern."""
    return shared_leftovers(cloud.session(admin=True), cloud.session(), lambda name: name.startswith(pattern))


@dataclass
class CleanupRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def row(self, kind: str) -> tuple[int, int, int]:
        """(found, deleted, failed) of the final table."""
        found = re.search(rf"^{re.escape(kind)}\s+(\d+)\s+(\d+)\s+(\d+)$", self.stdout, re.M)
        assert found, f"no row {kind!r} in:\n{self.output}"
        return int(found.group(1)), int(found.group(2)), int(found.group(3))


def credentials_args(cloud, admin: bool = False) -> list[str]:
    return cli_credentials(cloud, admin)


def run_cleanup(cloud, *args: str, admin: bool = False, timeout: float = 120,
                cwd: Path | None = None) -> CleanupRun:
    """`novastress-cleanup` as an operator runs it, with fast polls."""
    completed = subprocess.run([CLEANUP, *credentials_args(cloud, admin), "--poll-interval", "0.2",
                                "--timeout", "60", *args], cwd=cwd or ROOT, env=clean_env(),
                               capture_output=True, text=True, timeout=timeout)
    return CleanupRun(completed.returncode, completed.stdout, completed.stderr)


def check_every_kind(call, made: dict[str, tuple[str, str]], timeout: float) -> None:
    """Each kind of kinds.KINDS in its cleanup order, through `call` (OpenStackClient.request or
    cleanup's Cloud.call): found by its exact name, shown, deleted, gone; a second delete is fine.
    `made`: kind -> (id, name) of one resource each (kinds the cloud cannot make left out)."""
    from novastress_locust.kinds import in_cleanup_order
    order = [kind.name for kind in in_cleanup_order()]
    # servers first, a snapshot before its volume, the identity kinds last
    assert order.index("server") == 0 and order.index("volume_snapshot") < order.index("volume")
    assert order[-2:] == ["project", "user"]
    for kind in in_cleanup_order():
        if kind.name not in made:
            continue
        resource_id, name = made[kind.name]
        assert kind.named(call, name) == [resource_id], kind.name
        shown = kind.show(call, resource_id)
        assert shown is not None and shown[kind.name_field] == name, (kind.name, shown)
        kind.delete(call, resource_id)
        wait_until(lambda: kind.show(call, resource_id) is None, f"{kind.name} {name} gone", timeout=timeout,
                   interval=0.1)
        kind.delete(call, resource_id)                      # already gone: no error
        assert kind.named(call, name) == [], kind.name
