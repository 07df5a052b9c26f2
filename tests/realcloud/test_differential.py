"""The differential check: one sequence of API calls sent to the real Nova and to the embedded
cloud, compared call by call on the HTTP status and the keys of each answer (its top-level keys
and those of its main object: `server`, `servers[0]`, `quota_set`, `itemNotFound`...).

    step                  request                                   real  embedded  difference
    show server (tool)    compute GET /servers/{id} (2.37)          200   200       only in real: server.x

Every difference is fixed in the embedded cloud or listed, with the reason it is kept, in
differences.yaml; a listed difference that no longer occurs fails the test too, so the list
stays true. Both clouds are driven by the same code, through their own service catalogs, as a
user and project of the test's own (`ns-diff-...`), deleted at the end.
"""
from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

from novastress_locust.realnova import Shape
from novastress_locust.user import template

SHAPE = Shape(flavors=1, compute_hosts=1)
DIFFERENCES = Path(__file__).with_name("differences.yaml")
TOOL = "2.37"           # the tool's --compute-microversion default
PROXY = "2.35"          # the last microversion with Nova's image proxy (image metadata: 2.38)
CLI = "2.100"           # what the openstack CLI negotiates with a Nova 34
SERVICES = ("identity", "compute", "image", "network", "placement")
MISSING_ID = "6d2a1c4e-0b7f-4c1e-9a55-2f1d3c4b5a60"
# the parameters `openstack server list` sends, as it sends them
CLI_SERVER_LIST = {**{name: "None" for name in (
    "flavor", "image", "name", "project_id", "reservation_id", "status", "user_id", "host", "ip", "ip6",
    "changes-since", "changes-before")}, "deleted": "False"}


@dataclass
class Answer:
    """What one cloud answered to one step: its status and the keys of its body."""

    step: str
    request: str
    status: int
    keys: frozenset[str]
    empty: frozenset[str]       # the top-level lists that were empty: their items' keys are unknown


def body_keys(body: Any) -> frozenset[str]:
    """Top-level keys, and the keys of each top-level object (of the first one of a list)."""
    if not isinstance(body, dict):
        return frozenset()
    keys = set(body)
    for key, value in body.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            keys |= {f"{key}[0].{inner}" for inner in value[0]}
        elif isinstance(value, dict):
            keys |= {f"{key}.{inner}" for inner in value}
    return frozenset(keys)


def empty_lists(body: Any) -> frozenset[str]:
    return frozenset(key for key, value in body.items() if value == []) if isinstance(body, dict) else frozenset()


def root(url: str) -> str:
    """The version-less root of a catalog URL (`.../compute/v2.1` -> `.../compute`)."""
    return re.sub(r"/v\d+(\.\d+)?(/[0-9a-f]{32})?/?$", "", url.rstrip("/"))


@dataclass
class Cloud:
    """One cloud as the sequence drives it: its admin, the test's own member, the catalog."""

    name: str
    admin: ks_session.Session
    member: ks_session.Session | None = None
    project_id: str = ""
    user_id: str = ""
    password: str = ""
    prefix: str = ""
    endpoints: dict[str, str] = field(default_factory=dict)
    answers: list[Answer] = field(default_factory=list)

    # -- the test's own project and user ----------------------------------------------------
    def make_member(self) -> None:
        """A project and a user with the member role in it: the other tests keep `demo` empty."""
        self.prefix = f"ns-diff-{uuid.uuid4().hex[:8]}"
        self.password = uuid.uuid4().hex
        identity = root(self.admin.get_endpoint(service_type="identity", interface="public"))
        self.endpoints["identity"] = identity
        self.project_id = self.admin.post(f"{identity}/v3/projects", json={"project": {
            "name": self.prefix, "domain_id": "default"}}).json()["project"]["id"]
        self.user_id = self.admin.post(f"{identity}/v3/users", json={"user": {
            "name": self.prefix, "password": self.password, "domain_id": "default",
            "default_project_id": self.project_id}}).json()["user"]["id"]
        role = self.admin.get(f"{identity}/v3/roles", params={"name": "member"}).json()["roles"][0]["id"]
        self.admin.put(f"{identity}/v3/projects/{self.project_id}/users/{self.user_id}/roles/{role}")
        self.member = ks_session.Session(auth=v3.Password(
            auth_url=f"{identity}/v3", username=self.prefix, password=self.password, project_id=self.project_id,
            user_domain_id="default"))
        for kind in SERVICES[1:]:
            self.endpoints[kind] = self.member.get_endpoint(service_type=kind, interface="public").rstrip("/")

    # -- calls --------------------------------------------------------------------------------
    def call(self, step: str, service: str, method: str, path: str = "", *, microversion: str | None = None,
             admin: bool = False, record: bool = True, **kwargs: Any):
        """One request; recorded as the answer to `step` unless record=False (waits, cleanup)."""
        if service.endswith(" root"):     # a service's version-less root: its versions document
            service = service.removesuffix(" root")
            base = root(self.endpoints[service])
        else:
            base = self.endpoints[service]
        headers = kwargs.pop("headers", {})
        if microversion:
            headers = {**headers, "OpenStack-API-Version": f"compute {microversion}",
                       "X-OpenStack-Nova-API-Version": microversion}
        session = self.admin if admin else self.member
        response = session.request(base + path, method, headers=headers, raise_exc=False, **kwargs)
        if record:
            try:
                body = response.json() if response.content else None
            except ValueError:
                body = None
            params = kwargs.get("params")
            request = f"{service} {method} {template(path) or '/'}"
            request += "?" + "&".join(sorted(params)) if params else ""
            request += f" ({microversion})" if microversion else ""
            self.answers.append(Answer(step, request, response.status_code, body_keys(body), empty_lists(body)))
        return response

    def server(self, server_id: str) -> dict | None:
        response = self.call("", "compute", "GET", f"/servers/{server_id}", microversion=TOOL, record=False)
        return response.json()["server"] if response.status_code == 200 else None

    def wait(self, server_id: str, status: str, timeout: float = 60) -> dict | None:
        """Until the server has `status` and no task (None for DELETED: gone); AssertionError after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            server = self.server(server_id)
            if (server is None and status == "DELETED") or (
                    server and server["status"] == status and not server.get("OS-EXT-STS:task_state")):
                return server
            assert server is None or server["status"] != "ERROR", f"{self.name}: server went to ERROR: {server}"
            assert time.monotonic() < deadline, (
                f"{self.name}: server {server_id} not {status} after {timeout:.0f}s: "
                f"{server and (server['status'], server.get('OS-EXT-STS:task_state'))}")
            time.sleep(0.5)

    def wait_task_done(self, server_id: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while (self.server(server_id) or {}).get("OS-EXT-STS:task_state"):
            assert time.monotonic() < deadline, f"{self.name}: server {server_id} still busy after {timeout:.0f}s"
            time.sleep(0.5)

    # -- the end ------------------------------------------------------------------------------
    def delete_everything(self) -> None:
        """Everything of the test's project, then the project and the user; bounded."""
        if not self.project_id:
            return
        admin = {"admin": True, "record": False}
        servers = self.call("", "compute", "GET", "/servers/detail", microversion=TOOL, params={
            "all_tenants": "1", "project_id": self.project_id}, **admin).json().get("servers", [])
        for server in servers:
            self.call("", "compute", "POST", f"/servers/{server['id']}/action", json={"unlock": None},
                      microversion=TOOL, **admin)
            self.call("", "compute", "DELETE", f"/servers/{server['id']}", microversion=TOOL, **admin)
        deadline = time.monotonic() + 60
        while servers and time.monotonic() < deadline and any(
                self.call("", "compute", "GET", f"/servers/{s['id']}", microversion=TOOL, **admin).status_code
                != 404 for s in servers):
            time.sleep(1)
        for image in self.call("", "image", "GET", "/v2/images", params={"owner": self.project_id},
                               **admin).json().get("images", []):
            self.call("", "image", "DELETE", f"/v2/images/{image['id']}", **admin)
        for keypair in self.call("", "compute", "GET", "/os-keypairs", microversion="2.10",
                                 params={"user_id": self.user_id}, **admin).json().get("keypairs", []):
            self.call("", "compute", "DELETE", f"/os-keypairs/{keypair['keypair']['name']}", microversion="2.10",
                      params={"user_id": self.user_id}, **admin)
        for group in self.call("", "compute", "GET", "/os-server-groups", microversion=TOOL,
                               params={"all_projects": "1"}, **admin).json().get("server_groups", []):
            if group.get("project_id") == self.project_id:
                self.call("", "compute", "DELETE", f"/os-server-groups/{group['id']}", microversion=TOOL, **admin)
        for network in self.call("", "network", "GET", "/v2.0/networks", params={
                "project_id": self.project_id}, **admin).json().get("networks", []):
            self.call("", "network", "DELETE", f"/v2.0/networks/{network['id']}", **admin)
        for group in self.call("", "network", "GET", "/v2.0/security-groups", params={
                "project_id": self.project_id}, **admin).json().get("security_groups", []):
            self.call("", "network", "DELETE", f"/v2.0/security-groups/{group['id']}", **admin)
        identity = self.endpoints["identity"]
        self.admin.delete(f"{identity}/v3/users/{self.user_id}", raise_exc=False)
        self.admin.delete(f"{identity}/v3/projects/{self.project_id}", raise_exc=False)


# -- the sequence -------------------------------------------------------------------------------
def run_sequence(cloud: Cloud) -> None:
    """Every call the tool and the CLI make, and the compute API's error cases, in one order."""
    image_id, flavor_id = profile_calls(cloud)
    flavor_list_calls(cloud, flavor_id)
    tool_resources(cloud)
    server_id = tool_server(cloud, image_id, flavor_id)
    metadata_calls(cloud, server_id)
    error_calls(cloud, server_id, image_id, flavor_id)
    image_proxy_calls(cloud, image_id)
    server_actions(cloud, server_id)
    cli_calls(cloud, image_id, flavor_id)


def profile_calls(cloud: Cloud) -> tuple[str, str]:
    """Token, catalog, version documents and what the cloud profile reads; the image and flavor."""
    call = cloud.call
    call("token", "identity", "POST", "/v3/auth/tokens", authenticated=False, json={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "id": cloud.user_id, "password": cloud.password}}},
        "scope": {"project": {"id": cloud.project_id}}}})
    call("catalog", "identity", "GET", "/v3/auth/catalog")
    call("identity version", "identity", "GET", "/v3", authenticated=False)
    for kind in SERVICES:
        call(f"{kind} versions", f"{kind} root", "GET", "", authenticated=False)
    call("compute version", "compute", "GET", "/")
    call("compute v2.0 version", "compute root", "GET", "/v2/", authenticated=False)
    call("compute v2.0 flavors (a microversion asked is ignored)", "compute root", "GET", "/v2/flavors/detail",
         microversion="2.80")
    for prefix in ("/v2", "/v2.1"):
        call(f"servers under {prefix}/{{project_id}}", "compute root", "GET", f"{prefix}/{cloud.project_id}/servers")
        call(f"servers under {prefix}/{{another project}}", "compute root", "GET", f"{prefix}/{'0' * 32}/servers")
    flavors = call("flavors (profile)", "compute", "GET", "/flavors/detail", microversion=TOOL).json()["flavors"]
    images = call("images (profile)", "image", "GET", "/v2/images", params={"limit": "1000"}).json()["images"]
    call("networks (profile)", "network", "GET", "/v2.0/networks")
    call("quotas (profile)", "compute", "GET", f"/os-quota-sets/{cloud.project_id}", microversion=TOOL)
    call("compute services (admin)", "compute", "GET", "/os-services", params={"binary": "nova-compute"},
         microversion=TOOL, admin=True)
    call("limits", "compute", "GET", "/limits", microversion=TOOL)
    for microversion in ("2.1", "2.50", "2.57"):
        call(f"quota class default (admin, {microversion})", "compute", "GET", "/os-quota-class-sets/default",
             microversion=microversion, admin=True)
    call("quota class default as member", "compute", "GET", "/os-quota-class-sets/default", microversion=TOOL)
    # the value it has: the cloud's defaults stay as they are
    call("set quota class default (admin)", "compute", "PUT", "/os-quota-class-sets/default", microversion="2.57",
         json={"quota_class_set": {"metadata_items": 128}}, admin=True)
    call("set quota class, a key gone in 2.50 (admin)", "compute", "PUT", "/os-quota-class-sets/default",
         microversion="2.57", json={"quota_class_set": {"floating_ips": 10}}, admin=True)
    call("revert the project's quotas as member", "compute", "DELETE", f"/os-quota-sets/{cloud.project_id}",
         microversion=TOOL)
    call("revert the project's quotas (admin)", "compute", "DELETE", f"/os-quota-sets/{cloud.project_id}",
         microversion=TOOL, admin=True)
    image = next(image for image in images if image["status"] == "active")
    return image["id"], flavors[0]["id"]


def flavor_list_calls(cloud: Cloud, flavor_id: str) -> None:
    """The flavor list's filters and pages (both clouds have one public flavor)."""
    call = cloud.call

    def flavors(step: str, path: str = "/flavors", admin: bool = False, **params: str):
        call(step, "compute", "GET", path, params=params, microversion=TOOL, admin=admin)

    flavors("flavors, minRam 0", "/flavors/detail", minRam="0")
    flavors("flavors, minRam above all", minRam="9999999")
    flavors("flavors, minDisk not a number", "/flavors/detail", minDisk="1.5")
    flavors("flavors, limit 1", limit="1")
    flavors("flavors after the last", marker=flavor_id)
    flavors("flavors, unknown marker", marker=MISSING_ID)
    flavors("flavors, bad limit", limit="-1")
    flavors("flavors, any visibility (admin)", admin=True, is_public="none")
    flavors("flavors, bad is_public (admin)", admin=True, is_public="maybe")


def metadata_calls(cloud: Cloud, server_id: str) -> None:
    """A server's metadata API on an ACTIVE server, and its errors in Nova's order."""
    call = cloud.call
    path, missing = f"/servers/{server_id}/metadata", f"/servers/{MISSING_ID}/metadata"

    def meta(step: str, method: str, url: str, body: dict | None = None):
        call(step, "compute", method, url, json=body, microversion=TOOL)

    meta("merge server metadata", "POST", path, {"metadata": {"color": "blue", "shape": "round"}})
    meta("set server metadata item", "PUT", f"{path}/size", {"meta": {"size": "big"}})
    meta("show server metadata item", "GET", f"{path}/size")
    meta("server metadata item, URI mismatch", "PUT", f"{path}/a", {"meta": {"b": "1"}})
    meta("server metadata item, two items", "PUT", f"{path}/a", {"meta": {"a": "1", "b": "2"}})
    meta("server metadata, bad key", "POST", path, {"metadata": {"a/b": "1"}})
    meta("server metadata, value too long", "PUT", path, {"metadata": {"a": "x" * 256}})
    meta("unknown server metadata item", "GET", f"{path}/nothing")
    meta("delete unknown server metadata item", "DELETE", f"{path}/nothing")
    meta("delete server metadata item", "DELETE", f"{path}/color")
    meta("replace server metadata", "PUT", path, {"metadata": {"only": "this"}})
    meta("metadata of an unknown server", "GET", missing)
    meta("merge metadata of an unknown server", "POST", missing, {"metadata": {"a": "1"}})
    meta("metadata item of an unknown server, URI mismatch", "PUT", f"{missing}/a", {"meta": {"b": "1"}})
    meta("delete metadata item of an unknown server", "DELETE", f"{missing}/a")
    meta("server metadata item, POST", "POST", f"{path}/only", {"meta": {"only": "x"}})

    tags = f"/servers/{server_id}/tags"

    def tag(step: str, method: str, url: str, body: dict | None = None, microversion: str = "2.26"):
        call(step, "compute", method, url, json=body, microversion=microversion)

    tag("add a tag", "PUT", f"{tags}/blue")
    tag("add a tag again", "PUT", f"{tags}/blue")
    tag("check a tag", "GET", f"{tags}/blue")
    tag("check a missing tag", "GET", f"{tags}/red")
    tag("list tags", "GET", tags)
    tag("show server with tags", "GET", f"/servers/{server_id}")
    tag("replace tags", "PUT", tags, {"tags": ["a", "b"]})
    tag("replace tags, bad tag", "PUT", tags, {"tags": ["x/y"]})
    tag("replace tags, too many", "PUT", tags, {"tags": [str(n) for n in range(51)]})
    tag("add a tag, too long", "PUT", f"{tags}/{'x' * 61}")
    tag("delete a tag", "DELETE", f"{tags}/a")
    tag("delete a missing tag", "DELETE", f"{tags}/a")
    tag("delete every tag", "DELETE", tags)
    tag("tags of an unknown server", "GET", f"/servers/{MISSING_ID}/tags")
    tag("tags before 2.26", "GET", tags, microversion="2.25")

    call("server ips", "compute", "GET", f"/servers/{server_id}/ips", microversion=TOOL)
    call("server ips on a network it is not on", "compute", "GET", f"/servers/{server_id}/ips/nowhere",
         microversion=TOOL)
    call("ips of an unknown server", "compute", "GET", f"/servers/{MISSING_ID}/ips", microversion=TOOL)
    call("server password", "compute", "GET", f"/servers/{server_id}/os-server-password", microversion=TOOL)
    call("clear server password", "compute", "DELETE", f"/servers/{server_id}/os-server-password",
         microversion=TOOL)


def tool_resources(cloud: Cloud) -> None:
    """Keypairs, security groups and server groups as the tool makes, finds and deletes them."""
    call, name = cloud.call, cloud.prefix
    call("create keypair", "compute", "POST", "/os-keypairs", json={"keypair": {"name": f"{name}-kp"}},
         microversion=TOOL)
    call("create keypair again", "compute", "POST", "/os-keypairs", json={"keypair": {"name": f"{name}-kp"}},
         microversion=TOOL)
    call("list keypairs", "compute", "GET", "/os-keypairs", microversion=TOOL)
    call("show keypair", "compute", "GET", f"/os-keypairs/{name}-kp", microversion=TOOL)
    call("delete keypair", "compute", "DELETE", f"/os-keypairs/{name}-kp", microversion=TOOL)
    call("delete keypair again", "compute", "DELETE", f"/os-keypairs/{name}-kp", microversion=TOOL)
    for step, keypair, microversion in (
            ("keypair, bad name", {"name": f"{name}/kp"}, TOOL),
            ("keypair, name with a leading space", {"name": f" {name}-kp"}, TOOL),
            ("keypair, name too long", {"name": "k" * 256}, TOOL),
            ("keypair, '@' before 2.92", {"name": f"{name}@kp"}, "2.91"),
            ("keypair, empty public key", {"name": f"{name}-kp", "public_key": ""}, TOOL),
            ("keypair, public key too big", {"name": f"{name}-kp",
                                             "public_key": "ssh-rsa " + "A" * 2048 + " big@example"}, TOOL),
            ("keypair, public key not base64", {"name": f"{name}-kp", "public_key": "ssh-rsa not-base64"}, TOOL)):
        call(step, "compute", "POST", "/os-keypairs", json={"keypair": keypair}, microversion=microversion)

    group = call("create security group", "network", "POST", "/v2.0/security-groups", json={"security_group": {
        "name": f"{name}-sg", "description": "novastress"}}).json()["security_group"]
    call("create security group rule", "network", "POST", "/v2.0/security-group-rules", json={
        "security_group_rule": {"security_group_id": group["id"], "direction": "ingress", "ethertype": "IPv4",
                                "protocol": "tcp", "port_range_min": 22, "port_range_max": 22}})
    call("find security group", "network", "GET", "/v2.0/security-groups", params={"name": f"{name}-sg"})
    call("delete security group", "network", "DELETE", f"/v2.0/security-groups/{group['id']}")
    call("delete security group again", "network", "DELETE", f"/v2.0/security-groups/{group['id']}")

    # the real stack has no network a new project sees: one of its own, to compare a network's keys
    network = call("create network", "network", "POST", "/v2.0/networks",
                   json={"network": {"name": f"{name}-net"}}).json()["network"]
    call("find network", "network", "GET", "/v2.0/networks", params={"name": f"{name}-net"})
    call("delete network", "network", "DELETE", f"/v2.0/networks/{network['id']}")

    group = call("create server group", "compute", "POST", "/os-server-groups", json={"server_group": {
        "name": f"{name}-group", "policies": ["anti-affinity"]}}, microversion=TOOL).json()["server_group"]
    call("create server group, bad policy", "compute", "POST", "/os-server-groups", json={"server_group": {
        "name": f"{name}-group", "policies": ["nearby"]}}, microversion=TOOL)
    call("show server group", "compute", "GET", f"/os-server-groups/{group['id']}", microversion=TOOL)
    call("list server groups", "compute", "GET", "/os-server-groups", microversion=TOOL)
    call("delete server group", "compute", "DELETE", f"/os-server-groups/{group['id']}", microversion=TOOL)
    call("delete server group again", "compute", "DELETE", f"/os-server-groups/{group['id']}",
         microversion=TOOL)


def tool_server(cloud: Cloud, image_id: str, flavor_id: str) -> str:
    """A boot as the tool boots, waited for as its waiter waits; the server's id."""
    call = cloud.call
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 5))
    server = call("create server (tool)", "compute", "POST", "/servers", microversion=TOOL, json={"server": {
        "name": f"{cloud.prefix}-server", "imageRef": image_id, "flavorRef": flavor_id,
        "networks": "none"}}).json()["server"]
    call("show server, building", "compute", "GET", f"/servers/{server['id']}", microversion=TOOL)
    cloud.wait(server["id"], "ACTIVE")
    call("show server (tool)", "compute", "GET", f"/servers/{server['id']}", microversion=TOOL)
    call("show server (admin)", "compute", "GET", f"/servers/{server['id']}", microversion=TOOL, admin=True)
    call("changes-since (waiter)", "compute", "GET", "/servers/detail", params={"changes-since": since},
         microversion=TOOL)
    call("find server by name", "compute", "GET", "/servers", params={"name": f"^{cloud.prefix}-server$"},
         microversion=TOOL)
    call("list servers by address", "compute", "GET", "/servers", params={"ip": "10."}, microversion=TOOL)
    call("list servers by IPv6 address", "compute", "GET", "/servers", params={"ip6": "fd"}, microversion=TOOL)
    call("rename server", "compute", "PUT", f"/servers/{server['id']}", microversion=TOOL,
         json={"server": {"name": f"{cloud.prefix}-server"}})
    call("server metadata", "compute", "GET", f"/servers/{server['id']}/metadata", microversion=TOOL)
    path = f"/servers/{server['id']}"
    for step, fields, microversion in (
            ("update access IPs and disk config (2.75)", {"accessIPv4": "192.0.2.7", "accessIPv6": "2001:db8::7",
                                                          "OS-DCF:diskConfig": "AUTO"}, "2.75"),
            ("update, reduced answer (2.74)", {"name": f"{cloud.prefix}-server"}, "2.74"),
            ("update, empty name", {"name": ""}, TOOL),
            ("update, name with a leading space", {"name": " x"}, TOOL),
            ("update, name too long", {"name": "x" * 256}, TOOL),
            ("update, bad accessIPv4", {"accessIPv4": "300.1.1.1"}, TOOL),
            ("update, IPv4 as accessIPv6", {"accessIPv6": "192.0.2.1"}, TOOL),
            ("update, bad disk config", {"OS-DCF:diskConfig": "SOMETIMES"}, TOOL),
            ("update, description before 2.19", {"description": "d"}, "2.18"),
            ("update hostname (2.90)", {"hostname": "web-1"}, "2.90"),
            ("update, bad hostname (2.90)", {"hostname": "web_1"}, "2.90"),
            ("pin to another zone (2.104)", {"pinned_availability_zone": "elsewhere"}, "2.104"),
            ("pin to its zone (2.104)", {"pinned_availability_zone": "nova"}, "2.104"),
            ("unpin (2.104)", {"pinned_availability_zone": None}, "2.104")):
        call(step, "compute", "PUT", path, json={"server": fields}, microversion=microversion)
    call("update an unknown server", "compute", "PUT", f"/servers/{MISSING_ID}", json={"server": {"name": "x"}},
         microversion=TOOL)
    call("show server after the updates", "compute", "GET", path, microversion="2.104")
    call("instance actions", "compute", "GET", f"/servers/{server['id']}/os-instance-actions",
         microversion=TOOL)
    return server["id"]


def error_calls(cloud: Cloud, server_id: str, image_id: str, flavor_id: str) -> None:
    """The compute API's error cases, on an ACTIVE server."""
    call = cloud.call

    def boot(step: str, server: dict, microversion: str = TOOL):
        call(step, "compute", "POST", "/servers", microversion=microversion, json={"server": {
            "name": f"{cloud.prefix}-bad", **server}})

    call("unknown server", "compute", "GET", f"/servers/{MISSING_ID}", microversion=TOOL)
    call("delete unknown server", "compute", "DELETE", f"/servers/{MISSING_ID}", microversion=TOOL)
    call("action on unknown server", "compute", "POST", f"/servers/{MISSING_ID}/action",
         json={"os-stop": None}, microversion=TOOL)
    call("unknown flavor", "compute", "GET", f"/flavors/{MISSING_ID}", microversion=TOOL)
    boot("boot without flavorRef", {"imageRef": image_id, "networks": "none"})
    boot("boot, unknown flavorRef", {"imageRef": image_id, "flavorRef": MISSING_ID, "networks": "none"})
    boot("boot, unknown imageRef", {"imageRef": MISSING_ID, "flavorRef": flavor_id, "networks": "none"})
    boot("boot, imageRef not a uuid", {"imageRef": "cirros", "flavorRef": flavor_id, "networks": "none"})
    boot("boot without networks at 2.37", {"imageRef": image_id, "flavorRef": flavor_id})
    boot("boot, extra field", {"imageRef": image_id, "flavorRef": flavor_id, "networks": "none", "color": 1})
    call("boot, no server object", "compute", "POST", "/servers", json={"name": "x"}, microversion=TOOL)
    call("boot, malformed JSON", "compute", "POST", "/servers", data="{", microversion=TOOL,
         headers={"Content-Type": "application/json"})
    call("unknown action", "compute", "POST", f"/servers/{server_id}/action", json={"fly": None},
         microversion=TOOL)
    call("reboot, bad type", "compute", "POST", f"/servers/{server_id}/action",
         json={"reboot": {"type": "GENTLE"}}, microversion=TOOL)
    call("start an ACTIVE server", "compute", "POST", f"/servers/{server_id}/action", json={"os-start": None},
         microversion=TOOL)
    call("unpause an ACTIVE server", "compute", "POST", f"/servers/{server_id}/action", json={"unpause": None},
         microversion=TOOL)
    call("confirm resize, not resized", "compute", "POST", f"/servers/{server_id}/action",
         json={"confirmResize": None}, microversion=TOOL)
    call("resize to the same flavor", "compute", "POST", f"/servers/{server_id}/action",
         json={"resize": {"flavorRef": flavor_id}}, microversion=TOOL)
    call("unsupported microversion", "compute", "GET", "/servers", microversion="2.999")
    call("malformed microversion", "compute", "GET", "/servers", microversion="two")
    call("changes-since, bad time", "compute", "GET", "/servers/detail", params={"changes-since": "yesterday"},
         microversion=TOOL)
    call("list, bad limit", "compute", "GET", "/servers/detail", params={"limit": "-1"}, microversion=TOOL)
    call("services as member", "compute", "GET", "/os-services", microversion=TOOL)
    call("wrong method on the list", "compute", "PATCH", "/servers", microversion=TOOL)
    call("update the detail list", "compute", "PUT", "/servers/detail", json={"server": {"name": "x"}},
         microversion=TOOL)
    call("update without a body", "compute", "PUT", f"/servers/{server_id}", microversion=TOOL)
    call("bad token", "compute", "GET", "/servers", microversion=TOOL, authenticated=False,
         headers={"X-Auth-Token": "gAAAAABnot-a-token"})


def image_proxy_calls(cloud: Cloud, public_image_id: str) -> None:
    """Nova's image proxy (/images, /images/{id}/metadata) on an image of the test's project made in
    Glance, and on the public image, up to the microversions that still have it."""
    call = cloud.call
    image = call("", "image", "POST", "/v2/images", record=False, json={
        "name": f"{cloud.prefix}-proxy", "disk_format": "raw", "container_format": "bare",
        "visibility": "private", "shade": "dark"}).json()
    call("", "image", "PUT", f"/v2/images/{image['id']}/file", record=False, data=b"novastress" * 64,
         headers={"Content-Type": "application/octet-stream"})
    image_path = f"/images/{image['id']}"
    metadata = f"{image_path}/metadata"
    call("images (proxy)", "compute", "GET", "/images", microversion=PROXY)
    call("images detail, limit 1 (proxy)", "compute", "GET", "/images/detail", params={"limit": "1"},
         microversion=PROXY)
    call("images detail by name (proxy)", "compute", "GET", "/images/detail",
         params={"name": f"{cloud.prefix}-proxy"}, microversion=PROXY)
    call("images, bad limit (proxy)", "compute", "GET", "/images", params={"limit": "-1"}, microversion=PROXY)
    call("show image (proxy)", "compute", "GET", image_path, microversion=PROXY)
    call("show public image (proxy)", "compute", "GET", f"/images/{public_image_id}", microversion=PROXY)
    call("show unknown image (proxy)", "compute", "GET", f"/images/{MISSING_ID}", microversion=PROXY)
    call("show image at 2.36 (proxy)", "compute", "GET", image_path, microversion="2.36")
    call("images at 2.36 (proxy)", "compute", "GET", "/images", microversion="2.36")
    call("image metadata (proxy)", "compute", "GET", metadata, microversion=PROXY)
    call("image metadata at 2.38 (proxy)", "compute", "GET", metadata, microversion="2.38")
    call("image metadata at 2.39 (proxy)", "compute", "GET", metadata, microversion="2.39")
    call("merge image metadata (proxy)", "compute", "POST", metadata, json={"metadata": {"size_hint": "s"}},
         microversion=PROXY)
    call("replace image metadata (proxy)", "compute", "PUT", metadata, json={"metadata": {"shade": "light"}},
         microversion=PROXY)
    call("set image metadata item (proxy)", "compute", "PUT", f"{metadata}/shade", json={"meta": {"shade": "dim"}},
         microversion=PROXY)
    call("image metadata item (proxy)", "compute", "GET", f"{metadata}/shade", microversion=PROXY)
    call("set image metadata item, URI mismatch (proxy)", "compute", "PUT", f"{metadata}/shade",
         json={"meta": {"tone": "dim"}}, microversion=PROXY)
    call("set image metadata, bad key (proxy)", "compute", "POST", metadata, json={"metadata": {"a/b": "x"}},
         microversion=PROXY)
    call("delete image metadata item (proxy)", "compute", "DELETE", f"{metadata}/shade", microversion=PROXY)
    call("unknown image metadata item (proxy)", "compute", "GET", f"{metadata}/shade", microversion=PROXY)
    call("delete unknown image metadata item (proxy)", "compute", "DELETE", f"{metadata}/shade",
         microversion=PROXY)
    call("metadata of an unknown image (proxy)", "compute", "GET", f"/images/{MISSING_ID}/metadata",
         microversion=PROXY)
    call("set public image metadata as member (proxy)", "compute", "POST", f"/images/{public_image_id}/metadata",
         json={"metadata": {"shade": "dark"}}, microversion=PROXY)
    call("delete public image as member (proxy)", "compute", "DELETE", f"/images/{public_image_id}",
         microversion=PROXY)
    call("delete image at 2.36 (proxy)", "compute", "DELETE", image_path, microversion="2.36")
    call("delete image (proxy)", "compute", "DELETE", image_path, microversion=PROXY)
    call("show image deleted by nova, in glance", "image", "GET", f"/v2/images/{image['id']}")
    call("delete image again (proxy)", "compute", "DELETE", image_path, microversion=PROXY)


def server_actions(cloud: Cloud, server_id: str) -> None:
    """The actions the tool runs, each waited for, with the 409s of the states they pass through."""
    call = cloud.call

    def act(step: str, body: dict, status: str | None, microversion: str = TOOL):
        response = call(step, "compute", "POST", f"/servers/{server_id}/action", json=body,
                        microversion=microversion)
        if status and response.status_code in (200, 202):     # rescue answers 200 with its password
            cloud.wait(server_id, status)
        return response

    act("soft reboot", {"reboot": {"type": "SOFT"}}, "ACTIVE")
    act("hard reboot", {"reboot": {"type": "HARD"}}, "ACTIVE")
    act("stop", {"os-stop": None}, "SHUTOFF")
    call("show server, SHUTOFF", "compute", "GET", f"/servers/{server_id}", microversion=TOOL)
    act("stop a SHUTOFF server", {"os-stop": None}, None)
    act("change password of a SHUTOFF server", {"changePassword": {"adminPass": "novastress-4"}}, None)
    act("pause a SHUTOFF server", {"pause": None}, None)
    act("start", {"os-start": None}, "ACTIVE")
    act("pause", {"pause": None}, "PAUSED")
    act("unpause", {"unpause": None}, "ACTIVE")
    act("suspend", {"suspend": None}, "SUSPENDED")
    act("resume", {"resume": None}, "ACTIVE")
    act("change password", {"changePassword": {"adminPass": "novastress-1"}}, None)
    act("change password, no password", {"changePassword": {}}, None)
    act("console output, 2 lines", {"os-getConsoleOutput": {"length": 2}}, None)
    act("console output, all", {"os-getConsoleOutput": {"length": None}}, None)
    act("console output, bad length", {"os-getConsoleOutput": {"length": "x"}}, None)
    act("rescue", {"rescue": {"adminPass": "novastress-2"}}, "RESCUE")
    act("rescue a RESCUE server", {"rescue": None}, None)
    act("change password of a RESCUE server", {"changePassword": {"adminPass": "novastress-3"}}, None)
    act("unrescue", {"unrescue": None}, "ACTIVE")
    act("unrescue an ACTIVE server", {"unrescue": None}, None)
    act("lock", {"lock": None}, None)
    call("delete a locked server", "compute", "DELETE", f"/servers/{server_id}", microversion=TOOL)
    call("metadata of a locked server", "compute", "POST", f"/servers/{server_id}/metadata",
         json={"metadata": {"a": "1"}}, microversion=TOOL)
    act("unlock", {"unlock": None}, None)
    act("rebuild", {"rebuild": {"imageRef": (cloud.server(server_id) or {})["image"]["id"]}}, "ACTIVE")
    snapshot = act("create image (2.45)", {"createImage": {"name": f"{cloud.prefix}-snapshot"}}, None, "2.45")
    if snapshot.status_code == 202:
        cloud.wait_task_done(server_id)
        image_id = snapshot.json()["image_id"]
        call("show snapshot image", "image", "GET", f"/v2/images/{image_id}")
        call("show snapshot image (proxy)", "compute", "GET", f"/images/{image_id}", microversion=PROXY)
        call("images of the server (proxy)", "compute", "GET", "/images/detail", params={"server": server_id},
             microversion=PROXY)
        call("delete snapshot image", "image", "DELETE", f"/v2/images/{image_id}")
    act("shelve", {"shelve": None}, "SHELVED_OFFLOADED")
    shelved = {"name": f"{(cloud.server(server_id) or {}).get('name')}-shelved"}
    call("the shelved image", "image", "GET", "/v2/images", params=shelved)
    call("metadata of a SHELVED_OFFLOADED server", "compute", "PUT", f"/servers/{server_id}/metadata/a",
         json={"meta": {"a": "1"}}, microversion=TOOL)
    call("tag a SHELVED_OFFLOADED server", "compute", "PUT", f"/servers/{server_id}/tags/late", microversion="2.26")
    act("reboot a SHELVED_OFFLOADED server", {"reboot": {"type": "SOFT"}}, None)
    act("unshelve", {"unshelve": None}, "ACTIVE")
    call("the shelved image after unshelve", "image", "GET", "/v2/images", params=shelved)
    call("delete server (tool)", "compute", "DELETE", f"/servers/{server_id}", microversion=TOOL)
    cloud.wait(server_id, "DELETED")
    call("show a deleted server", "compute", "GET", f"/servers/{server_id}", microversion=TOOL)
    call("actions of a deleted server (2.21)", "compute", "GET", f"/servers/{server_id}/os-instance-actions",
         microversion="2.21")
    call("actions of a deleted server (2.20)", "compute", "GET", f"/servers/{server_id}/os-instance-actions",
         microversion="2.20")


def cli_calls(cloud: Cloud, image_id: str, flavor_id: str) -> None:
    """`openstack flavor list`, `image list`, `server create/list/show/delete`, as the CLI sends them."""
    call = cloud.call
    call("cli: compute version", "compute", "GET", "")
    call("cli: flavor list", "compute", "GET", "/flavors/detail", params={"is_public": "True"},
         microversion="2.61")
    call("cli: image list", "image", "GET", "/v2/images")
    call("cli: find flavor", "compute", "GET", f"/flavors/{flavor_id}", microversion=CLI)
    call("cli: find image", "image", "GET", f"/v2/images/{image_id}")
    server = call("cli: server create", "compute", "POST", "/servers", microversion=CLI, json={"server": {
        "name": f"{cloud.prefix}-cli", "imageRef": image_id, "flavorRef": flavor_id, "min_count": 1,
        "max_count": 1, "networks": "none"}}).json()["server"]
    cloud.wait(server["id"], "ACTIVE")
    call("cli: server show", "compute", "GET", f"/servers/{server['id']}", microversion=CLI)
    call("cli: server list", "compute", "GET", "/servers/detail", params=CLI_SERVER_LIST, microversion=CLI)
    call("cli: server list flavors", "compute", "GET", "/flavors/detail", microversion=CLI)
    call("cli: server show by name", "compute", "GET", f"/servers/{cloud.prefix}-cli", microversion=CLI)
    call("cli: server find by name", "compute", "GET", "/servers/detail", params={"name": f"{cloud.prefix}-cli"},
         microversion=CLI)
    call("cli: server delete", "compute", "DELETE", f"/servers/{server['id']}", microversion=CLI)
    cloud.wait(server["id"], "DELETED")


# -- comparing ----------------------------------------------------------------------------------
def differences(real: list[Answer], embedded: list[Answer]) -> list[tuple[Answer, Answer, str]]:
    """(real answer, embedded answer, difference) for each way two answers to a step differ."""
    assert [a.step for a in real] == [a.step for a in embedded], "the two clouds ran different sequences"
    found = []
    for mine, theirs in zip(real, embedded):
        if mine.status != theirs.status:
            found.append((mine, theirs, f"status: real {mine.status}, embedded {theirs.status}"))
        for one, other, only, empty in ((mine, theirs, "only in real", "empty in embedded"),
                                        (theirs, mine, "only in embedded", "empty in real")):
            lists = {key.partition("[0].")[0] for key in one.keys - other.keys if "[0]." in key}
            found += [(mine, theirs, f"{empty}: {key}") for key in sorted(lists & other.empty)]
            found += [(mine, theirs, f"{only}: {key}") for key in sorted(one.keys - other.keys)
                      if key.partition("[0].")[0] not in other.empty]
    return found


def listed_differences() -> dict[tuple[str, str], str]:
    """(step, difference) -> the reason it is kept, from differences.yaml."""
    listed = {}
    for entry in yaml.safe_load(DIFFERENCES.read_text()) or []:
        for difference in entry["differences"]:
            listed[(entry["step"], difference)] = entry["reason"]
    return listed


def table(rows: list[tuple[str, str, str, str, str, str]]) -> str:
    header = ("", "step", "request", "real", "embedded", "difference")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
                     for row in [header, *rows])


def test_real_nova_and_the_embedded_cloud_answer_alike(realnova, cloud_factory):
    embedded_cloud = cloud_factory(faults="none", delay_scale=0.1, seed=1, flavors=1, compute_hosts=1,
                                   external_network=False, services="compute,image,network,placement",
                                   snapshots_finish=False)
    clouds = [Cloud("real", realnova.session(admin=True)), Cloud("embedded", embedded_cloud.session(admin=True))]
    try:
        for cloud in clouds:
            cloud.make_member()
            run_sequence(cloud)
    finally:
        for cloud in clouds:
            cloud.delete_everything()
    real, embedded = clouds
    listed = listed_differences()
    found = differences(real.answers, embedded.answers)
    rows, unexpected = [], 0
    for mine, theirs, difference in found:
        known = (mine.step, difference) in listed
        unexpected += not known
        rows.append(("kept" if known else "NEW", mine.step, mine.request, str(mine.status), str(theirs.status),
                     difference))
    occurring = {(mine.step, difference) for mine, _theirs, difference in found}
    gone = sorted(key for key in listed if key not in occurring)
    report = (f"{len(real.answers)} calls, {len(found)} differences ({unexpected} neither fixed nor listed "
              f"in {DIFFERENCES.name}, {len(gone)} listed that no longer occur)\n{table(rows)}")
    if gone:
        report += "\nlisted in differences.yaml but no longer occurring:\n" + "\n".join(
            f"  {step}: {difference}" for step, difference in gone)
    print(report)
    assert not unexpected and not gone, report
