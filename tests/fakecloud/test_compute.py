"""Nova compute API of the embedded cloud, checked against the recorded real Nova 34 exchanges."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

from novastress_locust.fakecloud import EmbeddedCloud
from waiting import wait_until

COMPUTE = {"service_type": "compute"}
IMAGE = {"service_type": "image"}
VOLUME = {"service_type": "block-storage"}
NOVA_ERROR_TYPE = "application/json; charset=UTF-8"

# key sets of the recorded real bodies (transcript numbers in the names)
BOOT_RESPONSE_23 = {"id", "links", "OS-DCF:diskConfig", "security_groups", "adminPass"}
SERVER_2_1_24 = {
    "accessIPv4", "accessIPv6", "addresses", "created", "flavor", "hostId", "id", "image", "links",
    "metadata", "name", "status", "tenant_id", "user_id", "updated", "OS-DCF:diskConfig", "progress",
    "OS-EXT-AZ:availability_zone", "config_drive", "key_name", "OS-SRV-USG:launched_at",
    "OS-SRV-USG:terminated_at", "OS-EXT-STS:task_state", "OS-EXT-STS:vm_state", "OS-EXT-STS:power_state",
    "os-extended-volumes:volumes_attached"}
SERVER_LATEST_30 = SERVER_2_1_24 | {
    "locked", "description", "tags", "trusted_image_certificates", "server_groups", "locked_reason",
    "OS-EXT-SRV-ATTR:hostname", "pinned_availability_zone", "scheduler_hints"}
SERVER_2_47_33 = SERVER_LATEST_30 - {
    "OS-EXT-SRV-ATTR:hostname", "locked_reason", "pinned_availability_zone", "scheduler_hints",
    "server_groups", "trusted_image_certificates"}
DETAIL_LATEST_46 = SERVER_LATEST_30 - {"server_groups"}
ADMIN_EXTRA_47 = {
    "OS-EXT-SRV-ATTR:host", "OS-EXT-SRV-ATTR:instance_name", "OS-EXT-SRV-ATTR:hypervisor_hostname",
    "OS-EXT-SRV-ATTR:kernel_id", "OS-EXT-SRV-ATTR:launch_index", "OS-EXT-SRV-ATTR:ramdisk_id",
    "OS-EXT-SRV-ATTR:reservation_id", "OS-EXT-SRV-ATTR:root_device_name", "OS-EXT-SRV-ATTR:user_data",
    "host_status"}
FLAVOR_DETAIL_2_1_15 = {"id", "name", "ram", "disk", "swap", "OS-FLV-EXT-DATA:ephemeral",
                        "OS-FLV-DISABLED:disabled", "vcpus", "os-flavor-access:is_public", "rxtx_factor",
                        "links"}
FLAVOR_DETAIL_LATEST_16 = FLAVOR_DETAIL_2_1_15 - {"OS-FLV-DISABLED:disabled", "rxtx_factor"} | {
    "description", "extra_specs"}
LIMITS_2_1_85 = {
    "maxTotalCores", "maxPersonality", "maxPersonalitySize", "maxTotalInstances", "maxTotalKeypairs",
    "maxServerMeta", "maxImageMeta", "maxTotalRAMSize", "maxServerGroups", "maxServerGroupMembers",
    "maxTotalFloatingIps", "maxSecurityGroups", "maxSecurityGroupRules", "totalRAMUsed", "totalCoresUsed",
    "totalInstancesUsed", "totalFloatingIpsUsed", "totalSecurityGroupsUsed", "totalServerGroupsUsed"}
LIMITS_LATEST_86 = {
    "maxTotalCores", "maxTotalInstances", "maxTotalKeypairs", "maxServerMeta", "maxTotalRAMSize",
    "maxServerGroups", "maxServerGroupMembers", "totalRAMUsed", "totalCoresUsed", "totalInstancesUsed",
    "totalServerGroupsUsed"}
QUOTA_LATEST_87 = {"id", "cores", "instances", "key_pairs", "metadata_items", "ram", "server_group_members",
                   "server_groups"}
SERVICE_LATEST_83 = {"binary", "host", "id", "zone", "status", "state", "updated_at", "disabled_reason",
                     "forced_down"}
INSTANCE_ACTION_69 = {"action", "instance_uuid", "request_id", "user_id", "project_id", "start_time",
                      "message", "updated_at"}
KEYPAIR_SHOW_78 = {"name", "public_key", "fingerprint", "user_id", "created_at", "deleted", "deleted_at",
                   "id", "updated_at", "type"}
MIGRATION_110 = {"id", "uuid", "source_compute", "dest_compute", "source_node", "dest_node", "dest_host",
                 "old_instance_type_id", "new_instance_type_id", "instance_uuid", "status", "migration_type",
                 "user_id", "project_id", "created_at", "updated_at"}
PUBLIC_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ7m1y4qoM4bQ7n6Bq3k1xJ8ZkCrS0zv0P9y8pS6kQ1d "
              "test@novastress")


def nova(session, method: str, path: str, microversion: str | None = None, **kwargs):
    """One compute call through keystoneauth; never raises on HTTP errors."""
    return session.request(path, method, endpoint_filter=COMPUTE, microversion=microversion,
                           raise_exc=False, **kwargs)


def image_id(session) -> str:
    images = session.get("/v2/images", endpoint_filter=IMAGE).json()["images"]
    return next(image["id"] for image in images if image["name"] == "cirros-0.6.2-x86_64-disk")


def boot(session, name: str, microversion: str | None = "latest", networks="none", flavor: str = "42",
         **extra) -> dict:
    spec = {"name": name, "imageRef": image_id(session), "flavorRef": flavor, **extra}
    if networks is not None:
        spec["networks"] = networks
    response = nova(session, "POST", "/servers", microversion, json={"server": spec})
    assert response.status_code == 202, response.text
    return response.json()["server"]


def wait_for(session, server_id: str, status: str, timeout: float = 15.0, microversion: str = "latest") -> dict:
    """Poll until the server has `status` and no task; bounded in time."""
    def check():
        response = nova(session, "GET", f"/servers/{server_id}", microversion)
        assert response.status_code == 200, response.text
        seen = response.json()["server"]
        return seen if seen["status"] == status and seen["OS-EXT-STS:task_state"] is None else None
    return wait_until(check, f"server {server_id} {status}", timeout)


def wait_gone(session, server_id: str, timeout: float = 15.0) -> None:
    wait_until(lambda: nova(session, "GET", f"/servers/{server_id}").status_code == 404,
               f"server {server_id} deleted", timeout)


def action(session, server_id: str, body: dict, microversion: str | None = "latest"):
    return nova(session, "POST", f"/servers/{server_id}/action", microversion, json=body)


def nova_error(response, status: int, kind: str, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == NOVA_ERROR_TYPE
    assert response.json() == {kind: {"code": status, "message": message}}


@pytest.fixture(scope="module")
def slow_cloud(tmp_path_factory):
    """A cloud whose transitions last long enough to observe BUILD, deleting and the action tasks."""
    with EmbeddedCloud(log_dir=tmp_path_factory.mktemp("slow-logs"), faults="none", seed=3,
                       extra_args=["--delay", "build=0.8:0.8", "--delay", "delete=0.5:0.5",
                                   "--delay", "action=0.3:0.3"]) as embedded:
        yield embedded


@pytest.fixture(scope="module")
def slow(slow_cloud):
    return slow_cloud.session()


# -- version discovery and microversions -------------------------------------------
def test_version_documents(cloud, member):
    root = requests.get(f"{cloud.base_url}/compute/", timeout=10)
    assert root.status_code == 200
    assert "x-openstack-request-id" not in root.headers
    versions = {v["id"]: v for v in root.json()["versions"]}
    assert versions["v2.0"]["status"] == "DEPRECATED"
    assert (versions["v2.1"]["min_version"], versions["v2.1"]["version"]) == ("2.1", "2.104")
    assert versions["v2.1"]["links"] == [{"rel": "self", "href": f"{cloud.base_url}/compute/v2.1/"}]
    document = requests.get(f"{cloud.base_url}/compute/v2.1/", timeout=10)
    version = document.json()["version"]
    assert (version["id"], version["status"], version["min_version"], version["version"]) == \
        ("v2.1", "CURRENT", "2.1", "2.104")
    assert version["media-types"] == [{"base": "application/json",
                                       "type": "application/vnd.openstack.compute+json;version=2.1"}]
    assert document.headers["OpenStack-API-Version"] == "compute 2.1"


@pytest.mark.parametrize("headers, served", [
    ({}, "2.1"),
    ({"OpenStack-API-Version": "compute latest"}, "2.104"),
    ({"OpenStack-API-Version": "compute 2.100"}, "2.100"),
    ({"X-OpenStack-Nova-API-Version": "2.60"}, "2.60"),
])
def test_microversion_negotiation(member, headers, served):
    response = member.get("/servers", endpoint_filter=COMPUTE, headers=headers)
    assert response.status_code == 200
    assert response.json() == {"servers": []} or "servers" in response.json()
    assert response.headers["OpenStack-API-Version"] == f"compute {served}"
    assert response.headers["X-OpenStack-Nova-API-Version"] == served
    assert response.headers["Vary"] == "OpenStack-API-Version, X-OpenStack-Nova-API-Version"
    assert response.headers["x-compute-request-id"] == response.headers["x-openstack-request-id"]
    assert response.headers["x-openstack-request-id"].startswith("req-")


def test_malformed_microversion_is_400_without_version_headers(member):
    response = nova(member, "GET", "/servers", headers={"OpenStack-API-Version": "compute 2.latest"})
    nova_error(response, 400, "badRequest",
               "API Version String 2.latest is of invalid format. Must be of format MajorNum.MinorNum.")
    assert "Vary" not in response.headers and "OpenStack-API-Version" not in response.headers


@pytest.mark.parametrize("version", ["2.999", "3.0"])
def test_unsupported_microversion_is_406(member, version):
    response = nova(member, "GET", "/servers", headers={"OpenStack-API-Version": f"compute {version}"})
    nova_error(response, 406, "computeFault",
               f"Version {version} is not supported by the API. Minimum is 2.1 and maximum is 2.104.")
    assert response.headers["OpenStack-API-Version"] == f"compute {version}"


def test_missing_token_is_keystonemiddleware_401(cloud):
    response = requests.get(f"{cloud.base_url}/compute/v2.1/servers", timeout=10)
    assert response.status_code == 401
    assert response.json() == {"error": {"code": 401, "title": "Unauthorized",
                                         "message": "The request you have made requires authentication."}}
    assert response.headers["WWW-Authenticate"].startswith("Keystone uri=")


# -- flavors -------------------------------------------------------------------------
def test_flavors_list_detail_show_by_microversion(member):
    listed = nova(member, "GET", "/flavors").json()["flavors"]
    names = {f["name"] for f in listed}
    assert {"m1.nano", "m1.micro", "m1.tiny", "m1.small"} <= names
    assert all(set(f) == {"id", "name", "links"} for f in listed)
    old = nova(member, "GET", "/flavors/detail").json()["flavors"]
    assert all(set(f) == FLAVOR_DETAIL_2_1_15 for f in old)
    new = nova(member, "GET", "/flavors/detail", "latest").json()["flavors"]
    assert all(set(f) == FLAVOR_DETAIL_LATEST_16 for f in new)
    nano = next(f for f in new if f["name"] == "m1.nano")
    assert (nano["ram"], nano["vcpus"], nano["disk"], nano["swap"]) == (64, 1, 1, 0)
    assert next(f for f in old if f["name"] == "m1.nano")["swap"] == ""
    shown = nova(member, "GET", f"/flavors/{nano['id']}", "latest").json()["flavor"]
    assert shown == nano
    nova_error(nova(member, "GET", "/flavors/no-such-flavor"), 404, "itemNotFound",
               "Flavor no-such-flavor could not be found.")


def test_admin_creates_and_deletes_flavor_member_may_not(admin, member):
    body = {"flavor": {"name": "ns-test-flavor", "ram": 256, "vcpus": 2, "disk": 2}}
    nova_error(nova(member, "POST", "/flavors", "latest", json=body), 403, "forbidden",
               "Policy doesn't allow os_compute_api:os-flavor-manage:create to be performed.")
    created = nova(admin, "POST", "/flavors", "latest", json=body)
    assert created.status_code == 200
    flavor = created.json()["flavor"]
    assert (flavor["ram"], flavor["vcpus"], flavor["description"]) == (256, 2, None)
    nova_error(nova(admin, "POST", "/flavors", "latest", json=body), 409, "conflictingRequest",
               "Flavor with name ns-test-flavor already exists.")
    assert nova(admin, "DELETE", f"/flavors/{flavor['id']}", "latest").status_code == 202
    assert nova(member, "GET", f"/flavors/{flavor['id']}").status_code == 404


# -- boot and the build state machine ----------------------------------------------
def test_boot_at_2_1_build_then_active(slow, slow_cloud):
    created = nova(slow, "POST", "/servers", json={"server": {
        "name": "ns-boot-21", "imageRef": image_id(slow), "flavorRef": "42", "networks": []}})
    assert created.status_code == 202
    body = created.json()["server"]
    assert set(body) == BOOT_RESPONSE_23
    assert len(body["adminPass"]) == 12
    assert created.headers["location"] == f"{slow_cloud.base_url}/compute/v2.1/servers/{body['id']}"
    building = nova(slow, "GET", f"/servers/{body['id']}").json()["server"]
    assert set(building) == SERVER_2_1_24
    assert (building["status"], building["OS-EXT-STS:vm_state"], building["OS-EXT-STS:power_state"]) == \
        ("BUILD", "building", 0)
    assert building["hostId"] == "" and building["OS-SRV-USG:launched_at"] is None
    nova_error(action(slow, body["id"], {"pause": None}, None), 409, "conflictingRequest",
               f"Cannot 'pause' instance {body['id']} while it is in vm_state building")
    active = wait_for(slow, body["id"], "ACTIVE", microversion="2.1")
    # an empty "networks" is no choice: the port lands on the one usable network ("private")
    assert set(active) == SERVER_2_1_24 | {"security_groups"} and list(active["addresses"]) == ["private"]
    assert active["OS-EXT-STS:power_state"] == 1 and active["OS-EXT-AZ:availability_zone"] == "nova"
    assert len(active["hostId"]) == 56 and active["OS-SRV-USG:launched_at"]
    assert active["flavor"]["id"] == "42"
    assert nova(slow, "DELETE", f"/servers/{body['id']}").status_code == 204


def test_boot_at_latest_key_sets_by_microversion(member, admin, cloud):
    server = boot(member, "ns-boot-latest")
    active = wait_for(member, server["id"], "ACTIVE")
    assert set(active) == SERVER_LATEST_30
    assert active["flavor"] == {"vcpus": 1, "ram": 64, "disk": 1, "ephemeral": 0, "swap": 0,
                                "original_name": "m1.nano", "extra_specs": {}}
    assert active["image"]["properties"] == {}
    assert active["OS-EXT-SRV-ATTR:hostname"] == "ns-boot-latest"
    at_2_100 = nova(member, "GET", f"/servers/{server['id']}", "2.100").json()["server"]
    assert set(at_2_100) == SERVER_LATEST_30
    at_2_47 = nova(member, "GET", f"/servers/{server['id']}", "2.47").json()["server"]
    assert set(at_2_47) == SERVER_2_47_33
    hosts = requests.get(f"{cloud.base_url}/fakecloud", timeout=10).json()["fakecloud"]["compute_hosts"]
    as_admin = nova(admin, "GET", f"/servers/{server['id']}", "latest").json()["server"]
    assert set(as_admin) == SERVER_LATEST_30 | ADMIN_EXTRA_47
    assert as_admin["OS-EXT-SRV-ATTR:host"] in hosts and as_admin["host_status"] == "UP"
    assert nova(member, "DELETE", f"/servers/{server['id']}", "latest").status_code == 204


def test_boot_on_a_network_gets_an_address(member):
    networks = member.get("/v2.0/networks?name=private", endpoint_filter={"service_type": "network"})
    network = networks.json()["networks"][0]
    server = boot(member, "ns-boot-net", networks=[{"uuid": network["id"]}])
    active = wait_for(member, server["id"], "ACTIVE")
    (address,) = active["addresses"]["private"]
    assert address["OS-EXT-IPS:type"] == "fixed" and address["addr"].startswith("10.0.0.")
    assert active["security_groups"] == [{"name": "default"}]
    nova(member, "DELETE", f"/servers/{server['id']}")
    wait_gone(member, server["id"])


def test_boot_validation_errors(member):
    image = image_id(member)
    unknown = str(uuid.uuid4())
    spec = {"name": "ns-bad", "imageRef": image, "flavorRef": "42"}
    nova_error(nova(member, "POST", "/servers", "latest", json={"server": spec}), 400, "badRequest",
               f"Invalid input for field/attribute server. Value: {spec!r}. 'networks' is a required property")
    nova_error(nova(member, "POST", "/servers", "latest",
                    json={"server": dict(spec, flavorRef="does-not-exist", networks="none")}),
               400, "badRequest", "Flavor does-not-exist could not be found.")
    nova_error(nova(member, "POST", "/servers", "latest",
                    json={"server": dict(spec, imageRef=unknown, networks="none")}),
               400, "badRequest", "Can not find requested image")
    nova_error(nova(member, "POST", "/servers", "latest", data=b'{"server": {"name": "ns-bad", "imageRef": ',
                    headers={"Content-Type": "application/json"}),
               400, "badRequest", "Malformed request body")
    nova_error(nova(member, "POST", "/servers", "latest", json={"name": "ns-bad"}), 400, "badRequest",
               "'server' is a required property")
    nova_error(nova(member, "POST", "/servers", "2.36", json={"server": dict(spec, networks="none")}),
               400, "badRequest", f"Invalid input for field/attribute server. Value: "
                                  f"{dict(spec, networks='none')!r}. 'none' is not of type 'array'")


def test_unknown_server_and_action_errors(member):
    server = boot(member, "ns-errors")
    nova_error(action(member, server["id"], {"frobnicate": None}), 400, "badRequest",
               "There is no such action: frobnicate")
    unknown = str(uuid.uuid4())
    message = f"Instance {unknown} could not be found."
    nova_error(nova(member, "GET", f"/servers/{unknown}"), 404, "itemNotFound", message)
    nova_error(nova(member, "GET", "/servers/not-a-uuid"), 404, "itemNotFound",
               "Instance not-a-uuid could not be found.")
    nova_error(nova(member, "DELETE", f"/servers/{unknown}"), 404, "itemNotFound", message)
    nova_error(action(member, unknown, {"reboot": {"type": "SOFT"}}), 404, "itemNotFound", message)
    nova(member, "DELETE", f"/servers/{server['id']}")


# -- actions -----------------------------------------------------------------------
def test_wrong_state_actions_are_409(member):
    server = boot(member, "ns-409")
    sid = server["id"]
    wait_for(member, sid, "ACTIVE")
    nova_error(action(member, sid, {"os-start": None}), 409, "conflictingRequest",
               f"Cannot 'start' instance {sid} while it is in vm_state active")
    nova_error(action(member, sid, {"confirmResize": None}), 409, "conflictingRequest",
               f"Cannot 'confirmResize' instance {sid} while it is in vm_state active")
    assert action(member, sid, {"os-stop": None}).status_code == 202
    wait_for(member, sid, "SHUTOFF")
    nova_error(action(member, sid, {"os-stop": None}), 409, "conflictingRequest",
               f"Cannot 'stop' instance {sid} while it is in vm_state stopped")
    nova_error(action(member, sid, {"unpause": None}), 409, "conflictingRequest",
               f"Cannot 'unpause' instance {sid} while it is in vm_state stopped")
    nova(member, "DELETE", f"/servers/{sid}")


def test_every_action_reaches_its_end_state(member):
    sid = boot(member, "ns-actions")["id"]
    wait_for(member, sid, "ACTIVE")
    steps = [({"reboot": {"type": "SOFT"}}, "ACTIVE", "active", 1),
             ({"reboot": {"type": "HARD"}}, "ACTIVE", "active", 1),
             ({"os-stop": None}, "SHUTOFF", "stopped", 4),
             ({"os-start": None}, "ACTIVE", "active", 1),
             ({"pause": None}, "PAUSED", "paused", 1),
             ({"unpause": None}, "ACTIVE", "active", 1),
             ({"suspend": None}, "SUSPENDED", "suspended", 1),
             ({"resume": None}, "ACTIVE", "active", 1),
             ({"shelve": None}, "SHELVED_OFFLOADED", "shelved_offloaded", 4),
             ({"unshelve": None}, "ACTIVE", "active", 1)]
    request_ids = []
    for body, status, vm_state, power_state in steps:
        response = action(member, sid, body)
        assert response.status_code == 202, (body, response.text)
        request_ids.append(response.headers["x-openstack-request-id"])
        server = wait_for(member, sid, status)
        assert (server["OS-EXT-STS:vm_state"], server["OS-EXT-STS:power_state"]) == (vm_state, power_state)
        if status == "SHELVED_OFFLOADED":
            assert server["hostId"] == "" and server["OS-EXT-AZ:availability_zone"] == ""
            assert "progress" not in server
    listed = nova(member, "GET", f"/servers/{sid}/os-instance-actions?limit=3", "latest").json()
    assert [a["action"] for a in listed["instanceActions"]] == ["unshelve", "shelve", "resume"]
    assert all(set(a) == INSTANCE_ACTION_69 for a in listed["instanceActions"])
    assert listed["instanceActions"][0]["request_id"] == request_ids[-1]
    assert listed["links"][0]["href"].endswith(f"limit=3&marker={request_ids[-3]}")
    every = nova(member, "GET", f"/servers/{sid}/os-instance-actions", "latest").json()["instanceActions"]
    assert every[-1]["action"] == "create" and len(every) == len(steps) + 1
    shown = nova(member, "GET", f"/servers/{sid}/os-instance-actions/{request_ids[2]}", "latest").json()
    assert shown["instanceAction"]["action"] == "stop"
    assert shown["instanceAction"]["events"][0]["result"] == "Success"
    nova(member, "DELETE", f"/servers/{sid}")


def test_transitions_show_their_task_states(slow):
    sid = boot(slow, "ns-tasks")["id"]
    wait_for(slow, sid, "ACTIVE")
    assert action(slow, sid, {"reboot": {"type": "HARD"}}).status_code == 202
    rebooting = nova(slow, "GET", f"/servers/{sid}", "latest").json()["server"]
    assert (rebooting["status"], rebooting["OS-EXT-STS:task_state"]) == ("HARD_REBOOT", "rebooting_hard")
    wait_for(slow, sid, "ACTIVE")
    assert nova(slow, "DELETE", f"/servers/{sid}").status_code == 204
    deleting = nova(slow, "GET", f"/servers/{sid}").json()["server"]
    assert (deleting["status"], deleting["OS-EXT-STS:task_state"]) == ("ACTIVE", "deleting")
    wait_gone(slow, sid)
    nova_error(nova(slow, "DELETE", f"/servers/{sid}"), 404, "itemNotFound",
               f"Instance {sid} could not be found.")


def test_lock_semantics(member, admin):
    sid = boot(member, "ns-lock")["id"]
    wait_for(member, sid, "ACTIVE")
    nova_error(action(member, sid, {"lock": {"locked_reason": "too early"}}, "2.72"), 400, "badRequest",
               "Invalid input for field/attribute lock. Value: {'locked_reason': 'too early'}. "
               "Additional properties are not allowed ('locked_reason' was unexpected)")
    assert action(member, sid, {"lock": {"locked_reason": "recording"}}).status_code == 202
    locked = nova(member, "GET", f"/servers/{sid}", "latest").json()["server"]
    assert (locked["locked"], locked["locked_reason"]) == (True, "recording")
    nova_error(action(member, sid, {"reboot": {"type": "SOFT"}}), 409, "conflictingRequest",
               f"Instance {sid} is locked")
    nova_error(nova(member, "DELETE", f"/servers/{sid}"), 409, "conflictingRequest", f"Instance {sid} is locked")
    assert action(admin, sid, {"reboot": {"type": "SOFT"}}).status_code == 202  # admin overrides the lock
    wait_for(member, sid, "ACTIVE")
    assert action(member, sid, {"unlock": None}).status_code == 202
    unlocked = nova(member, "GET", f"/servers/{sid}", "latest").json()["server"]
    assert (unlocked["locked"], unlocked["locked_reason"]) == (False, None)
    assert nova(member, "DELETE", f"/servers/{sid}").status_code == 204


def test_resize_revert_and_confirm(member, admin):
    sid = boot(member, "ns-resize")["id"]
    wait_for(member, sid, "ACTIVE")
    nova_error(action(member, sid, {"resize": {"flavorRef": "42"}}), 400, "badRequest",
               "When resizing, instances must change flavor!")
    source = nova(admin, "GET", f"/servers/{sid}", "latest").json()["server"]["OS-EXT-SRV-ATTR:host"]
    assert action(member, sid, {"resize": {"flavorRef": "84"}}).status_code == 202
    resized = wait_for(member, sid, "VERIFY_RESIZE")
    assert (resized["OS-EXT-STS:vm_state"], resized["flavor"]["original_name"]) == ("resized", "m1.micro")
    target = nova(admin, "GET", f"/servers/{sid}", "latest").json()["server"]["OS-EXT-SRV-ATTR:host"]
    assert target != source  # allow_resize_to_same_host is False, as recorded
    nova_error(action(member, sid, {"resize": {"flavorRef": "42"}}), 409, "conflictingRequest",
               f"Cannot 'resize' instance {sid} while it is in vm_state resized")
    assert action(member, sid, {"revertResize": None}).status_code == 202
    reverted = wait_for(member, sid, "ACTIVE")
    assert reverted["flavor"]["ram"] == 64
    assert action(member, sid, {"resize": {"flavorRef": "84"}}).status_code == 202
    wait_for(member, sid, "VERIFY_RESIZE")
    assert action(member, sid, {"confirmResize": None}).status_code == 204
    confirmed = wait_for(member, sid, "ACTIVE")
    assert confirmed["flavor"]["ram"] == 128
    nova_error(action(member, sid, {"confirmResize": None}), 409, "conflictingRequest",
               f"Cannot 'confirmResize' instance {sid} while it is in vm_state active")
    migrations = nova(admin, "GET", f"/os-migrations?instance_uuid={sid}", "latest").json()["migrations"]
    assert [m["status"] for m in migrations] == ["confirmed", "reverted"]
    assert all(set(m) == MIGRATION_110 for m in migrations)
    nova_error(nova(member, "GET", "/os-migrations", "latest"), 403, "forbidden",
               "Policy doesn't allow os_compute_api:os-migrations:index to be performed.")
    nova(member, "DELETE", f"/servers/{sid}")


def test_rebuild_returns_the_server_with_a_password(member):
    sid = boot(member, "ns-rebuild")["id"]
    wait_for(member, sid, "ACTIVE")
    rebuilt = action(member, sid, {"rebuild": {"imageRef": image_id(member), "name": "ns-rebuilt"}})
    assert rebuilt.status_code == 202
    body = rebuilt.json()["server"]
    assert body["status"] == "REBUILD" and len(body["adminPass"]) == 12 and body["name"] == "ns-rebuilt"
    wait_for(member, sid, "ACTIVE")
    nova(member, "DELETE", f"/servers/{sid}")


# -- volume attachments ---------------------------------------------------------------
def test_volume_attach_and_detach(member):
    volume = member.post("/volumes", json={"volume": {"size": 1, "name": "ns-attach"}},
                         endpoint_filter=VOLUME).json()["volume"]
    sid = boot(member, "ns-attach")["id"]
    wait_for(member, sid, "ACTIVE")
    def volume_record(status: str) -> dict | None:
        seen = member.get(f"/volumes/{volume['id']}", endpoint_filter=VOLUME).json()["volume"]
        return seen if seen["status"] == status else None
    wait_until(lambda: volume_record("available"), "the volume available", 10)
    attached = nova(member, "POST", f"/servers/{sid}/os-volume_attachments", "latest",
                    json={"volumeAttachment": {"volumeId": volume["id"]}})
    assert attached.status_code == 200, attached.text
    attachment = attached.json()["volumeAttachment"]
    assert (attachment["device"], attachment["serverId"], attachment["volumeId"]) == \
        ("/dev/vdb", sid, volume["id"])
    assert "id" not in attachment and attachment["attachment_id"]  # 2.89 dropped "id"
    record = wait_until(lambda: volume_record("in-use"), "the volume in use", 10)
    assert record["attachments"][0]["server_id"] == sid
    listed = nova(member, "GET", f"/servers/{sid}/os-volume_attachments").json()["volumeAttachments"]
    assert listed == [{"device": "/dev/vdb", "serverId": sid, "volumeId": volume["id"], "id": volume["id"]}]
    server = nova(member, "GET", f"/servers/{sid}", "latest").json()["server"]
    assert server["os-extended-volumes:volumes_attached"] == [{"id": volume["id"],
                                                               "delete_on_termination": False}]
    assert nova(member, "DELETE", f"/servers/{sid}/os-volume_attachments/{volume['id']}").status_code == 202
    wait_until(lambda: volume_record("available"), "the volume detached", 10)
    nova_error(nova(member, "DELETE", f"/servers/{sid}/os-volume_attachments/{volume['id']}"), 404,
               "itemNotFound", f"volume_id not found: {volume['id']}")
    nova(member, "DELETE", f"/servers/{sid}")
    wait_gone(member, sid)
    member.delete(f"/volumes/{volume['id']}", endpoint_filter=VOLUME)


# -- keypairs ------------------------------------------------------------------------
def test_keypairs(member):
    generated = nova(member, "POST", "/os-keypairs", json={"keypair": {"name": "ns-kp-gen"}})
    assert generated.status_code == 200
    body = generated.json()["keypair"]
    assert set(body) == {"private_key", "name", "public_key", "fingerprint", "user_id"}
    assert body["private_key"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert body["public_key"].startswith("ssh-rsa ") and body["fingerprint"].count(":") == 15
    imported = nova(member, "POST", "/os-keypairs", "latest",
                    json={"keypair": {"name": "ns-kp", "public_key": PUBLIC_KEY}})
    assert imported.status_code == 201
    assert set(imported.json()["keypair"]) == {"type", "name", "public_key", "fingerprint", "user_id"}
    nova_error(nova(member, "POST", "/os-keypairs", "latest", json={"keypair": {"name": "ns-kp-x"}}),
               400, "badRequest", "Invalid input for field/attribute keypair. Value: {'name': 'ns-kp-x'}. "
                                  "'public_key' is a required property")
    nova_error(nova(member, "POST", "/os-keypairs", "latest",
                    json={"keypair": {"name": "ns-kp", "public_key": PUBLIC_KEY}}),
               409, "conflictingRequest", "Key pair 'ns-kp' already exists.")
    old_list = nova(member, "GET", "/os-keypairs").json()["keypairs"]
    assert [k["keypair"]["name"] for k in old_list] == ["ns-kp", "ns-kp-gen"]
    assert all(set(k["keypair"]) == {"name", "public_key", "fingerprint"} for k in old_list)
    new_list = nova(member, "GET", "/os-keypairs", "latest").json()["keypairs"]
    assert all(k["keypair"]["type"] == "ssh" for k in new_list)
    shown = nova(member, "GET", "/os-keypairs/ns-kp", "latest").json()["keypair"]
    assert set(shown) == KEYPAIR_SHOW_78 and shown["deleted"] is False
    assert nova(member, "DELETE", "/os-keypairs/ns-kp", "latest").status_code == 204
    assert nova(member, "DELETE", "/os-keypairs/ns-kp-gen", "latest").status_code == 204
    user_id = shown["user_id"]
    nova_error(nova(member, "DELETE", "/os-keypairs/ns-kp", "latest"), 404, "itemNotFound",
               f"Keypair ns-kp not found for user {user_id}")


# -- services, hypervisors, limits, quotas ----------------------------------------------
def test_os_services_admin_and_member(admin, member, cloud):
    hosts = requests.get(f"{cloud.base_url}/fakecloud", timeout=10).json()["fakecloud"]["compute_hosts"]
    old = nova(admin, "GET", "/os-services").json()["services"]
    assert all(isinstance(s["id"], int) for s in old)
    services = nova(admin, "GET", "/os-services", "latest").json()["services"]
    assert all(set(s) == SERVICE_LATEST_83 for s in services)
    assert all(uuid.UUID(s["id"]) for s in services)
    binaries = [s["binary"] for s in services]
    assert binaries.count("nova-conductor") == 1 and binaries.count("nova-scheduler") == 1
    assert sorted(s["host"] for s in services if s["binary"] == "nova-compute") == sorted(hosts)
    nova_error(nova(member, "GET", "/os-services", "latest"), 403, "forbidden",
               "Policy doesn't allow os_compute_api:os-services:list to be performed.")


def test_os_hypervisors_admin_only(admin, member, cloud):
    hosts = requests.get(f"{cloud.base_url}/fakecloud", timeout=10).json()["fakecloud"]["compute_hosts"]
    listed = nova(admin, "GET", "/os-hypervisors", "latest").json()["hypervisors"]
    assert sorted(h["hypervisor_hostname"] for h in listed) == sorted(hosts)
    latest = nova(admin, "GET", "/os-hypervisors/detail", "latest").json()["hypervisors"]
    assert all(h["uptime"] is None and "vcpus" not in h for h in latest)
    older = nova(admin, "GET", "/os-hypervisors/detail", "2.87").json()["hypervisors"]
    assert all(h["vcpus"] > 0 and "free_ram_mb" in h for h in older)
    nova_error(nova(member, "GET", "/os-hypervisors", "latest"), 403, "forbidden",
               "Policy doesn't allow os_compute_api:os-hypervisors:list to be performed.")


def test_limits_and_quota_sets(member, admin):
    project_id = member.get_project_id()
    old = nova(member, "GET", "/limits").json()["limits"]
    assert old["rate"] == [] and set(old["absolute"]) == LIMITS_2_1_85
    new = nova(member, "GET", "/limits", "latest").json()["limits"]["absolute"]
    assert set(new) == LIMITS_LATEST_86
    quota = nova(member, "GET", f"/os-quota-sets/{project_id}", "latest").json()["quota_set"]
    assert set(quota) == QUOTA_LATEST_87 and quota["instances"] == new["maxTotalInstances"]
    detail = nova(member, "GET", f"/os-quota-sets/{project_id}/detail", "latest").json()["quota_set"]
    assert set(detail) == QUOTA_LATEST_87
    assert set(detail["instances"]) == {"limit", "in_use", "reserved"}
    nova_error(nova(member, "PUT", f"/os-quota-sets/{project_id}", "latest",
                    json={"quota_set": {"instances": 1}}), 403, "forbidden",
               "Policy doesn't allow os_compute_api:os-quota-sets:update to be performed.")


@pytest.fixture
def quota_project(admin, cloud):
    """A fresh project and member user (quota changes stay out of the shared demo project)."""
    identity = {"service_type": "identity"}
    name = f"ns-quota-{uuid.uuid4().hex[:8]}"
    project = admin.post("/v3/projects", json={"project": {"name": name}},
                         endpoint_filter=identity).json()["project"]
    user = admin.post("/v3/users", json={"user": {"name": name, "password": "pw-quota-123",
                                                  "default_project_id": project["id"]}},
                      endpoint_filter=identity).json()["user"]
    role = admin.get("/v3/roles?name=member", endpoint_filter=identity).json()["roles"][0]
    admin.put(f"/v3/projects/{project['id']}/users/{user['id']}/roles/{role['id']}", endpoint_filter=identity)
    session = ks_session.Session(auth=v3.Password(
        auth_url=cloud.auth_url, username=name, password="pw-quota-123", project_name=name,
        user_domain_name="Default", project_domain_name="Default"))
    yield project["id"], session
    admin.delete(f"/v3/users/{user['id']}", endpoint_filter=identity)
    admin.delete(f"/v3/projects/{project['id']}", endpoint_filter=identity)


def test_over_quota_boot_is_403(admin, quota_project):
    project_id, session = quota_project
    updated = nova(admin, "PUT", f"/os-quota-sets/{project_id}", "latest", json={"quota_set": {"instances": 1}})
    assert updated.status_code == 200 and updated.json()["quota_set"]["instances"] == 1
    first = boot(session, "ns-quota-1")
    spec = {"name": "ns-quota-2", "imageRef": image_id(session), "flavorRef": "42", "networks": "none"}
    nova_error(nova(session, "POST", "/servers", "latest", json={"server": spec}), 403, "forbidden",
               "Quota exceeded for instances: Requested 1, but already used 1 of 1 instances")
    detail = nova(session, "GET", f"/os-quota-sets/{project_id}/detail", "latest").json()["quota_set"]
    assert detail["instances"] == {"limit": 1, "in_use": 1, "reserved": 0}
    assert nova(session, "GET", "/limits", "latest").json()["limits"]["absolute"]["totalInstancesUsed"] == 1
    nova(session, "DELETE", f"/servers/{first['id']}")
    wait_gone(session, first["id"])
    detail = nova(session, "GET", f"/os-quota-sets/{project_id}/detail", "latest").json()["quota_set"]
    assert detail["instances"]["in_use"] == 0


# -- listing -------------------------------------------------------------------------
def test_listing_filters_and_pagination(member, admin):
    prefix = f"ns-list-{uuid.uuid4().hex[:6]}"
    ids = [boot(member, f"{prefix}-{n}")["id"] for n in range(3)]
    for sid in ids:
        wait_for(member, sid, "ACTIVE")
    assert action(member, ids[0], {"os-stop": None}).status_code == 202
    wait_for(member, ids[0], "SHUTOFF")
    named = nova(member, "GET", f"/servers?name=^{prefix}-").json()["servers"]
    assert [s["id"] for s in named] == ids[::-1]  # newest first
    assert all(set(s) == {"id", "name", "links"} for s in named)
    shutoff = nova(member, "GET", f"/servers/detail?name={prefix}&status=SHUTOFF", "latest").json()["servers"]
    assert [s["id"] for s in shutoff] == [ids[0]]
    assert all(set(s) == DETAIL_LATEST_46 - {"progress"} for s in shutoff)  # no progress when SHUTOFF
    active = nova(member, "GET", f"/servers/detail?name={prefix}&status=ACTIVE", "latest").json()["servers"]
    assert [s["id"] for s in active] == [ids[2], ids[1]]
    assert all(set(s) == DETAIL_LATEST_46 for s in active)
    first = nova(member, "GET", f"/servers/detail?name={prefix}&limit=2", "latest").json()
    assert [s["id"] for s in first["servers"]] == [ids[2], ids[1]]
    (link,) = first["servers_links"]
    assert link["rel"] == "next" and f"marker={ids[1]}" in link["href"]
    follow = requests.get(link["href"], headers={"X-Auth-Token": member.get_token(),
                                                 "OpenStack-API-Version": "compute latest"}, timeout=10)
    assert [s["id"] for s in follow.json()["servers"]] == [ids[0]]
    nova_error(nova(member, "GET", "/servers?marker=not-a-server"), 400, "badRequest",
               "marker [not-a-server] not found")
    nova_error(nova(member, "GET", "/servers/detail?all_tenants=1", "latest"), 403, "forbidden",
               "Policy doesn't allow os_compute_api:servers:detail:get_all_tenants to be performed.")
    everyone = nova(admin, "GET", f"/servers/detail?all_tenants=1&name={prefix}", "latest").json()["servers"]
    assert {s["id"] for s in everyone} == set(ids)
    assert all(set(s) - {"progress"} == DETAIL_LATEST_46 - {"progress"} | ADMIN_EXTRA_47 for s in everyone)
    own = nova(admin, "GET", f"/servers?name={prefix}").json()["servers"]
    assert own == []  # admin's own project has none of them
    for sid in ids:
        nova(member, "DELETE", f"/servers/{sid}")


def test_changes_since_shows_deleted_servers(member):
    since = (datetime.now(timezone.utc) - timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    sid = boot(member, "ns-changes")["id"]
    wait_for(member, sid, "ACTIVE")
    assert nova(member, "DELETE", f"/servers/{sid}").status_code == 204
    wait_gone(member, sid)
    assert sid not in {s["id"] for s in nova(member, "GET", "/servers").json()["servers"]}
    changed = nova(member, "GET", f"/servers/detail?changes-since={since}", "latest").json()["servers"]
    gone = next(s for s in changed if s["id"] == sid)
    assert (gone["status"], gone["OS-EXT-STS:vm_state"], gone["OS-EXT-STS:power_state"]) == \
        ("DELETED", "deleted", 0)
    assert gone["OS-SRV-USG:terminated_at"]
    index = nova(member, "GET", f"/servers?changes-since={since}").json()["servers"]
    assert sid in {s["id"] for s in index}
    nova_error(nova(member, "GET", "/servers/detail?changes-since=not-a-time", "latest"), 400, "badRequest",
               "Invalid input for query parameters changes-since. Value: not-a-time. "
               "'not-a-time' is not a 'date-time'")


# -- request ids and logs -------------------------------------------------------------
def test_global_request_id_reaches_api_and_compute_logs(member, cloud):
    global_id = f"req-{uuid.uuid4()}"
    shown = nova(member, "GET", "/flavors/42", "latest", headers={"X-OpenStack-Request-ID": global_id})
    local_id = shown.headers["x-openstack-request-id"]
    assert local_id != global_id and shown.headers["x-compute-request-id"] == local_id
    ignored = nova(member, "GET", "/flavors/42", "latest", headers={"X-OpenStack-Request-ID": "my-trace-0001"})
    ignored_id = ignored.headers["x-openstack-request-id"]
    boot_global = f"req-{uuid.uuid4()}"
    created = nova(member, "POST", "/servers", "latest", headers={"X-OpenStack-Request-ID": boot_global},
                   json={"server": {"name": "ns-global-id", "imageRef": image_id(member), "flavorRef": "42",
                                    "networks": "none"}})
    boot_local = created.headers["x-openstack-request-id"]
    sid = created.json()["server"]["id"]
    wait_for(member, sid, "ACTIVE")
    api_log = (Path(cloud.log_dir) / "nova-api.log").read_text()
    line = next(line for line in api_log.splitlines() if f"[{global_id} {local_id} " in line)
    assert line.split()[3:5] == ["INFO", "nova.api.openstack.requestlog"]
    assert '"GET /v2.1/flavors/42" status: 200 len: ' in line and "microversion: 2.104 time: " in line
    assert f"[None {ignored_id} " in api_log and "my-trace-0001" not in api_log
    compute_logs = "".join(p.read_text() for p in Path(cloud.log_dir).glob("nova-compute-*.log"))
    spawned = [line for line in compute_logs.splitlines() if f"[instance: {sid}]" in line]
    assert spawned and all(f"[{boot_global} {boot_local} " in line for line in spawned)
    assert any("Took " in line and "seconds to build instance." in line for line in spawned)
    nova(member, "DELETE", f"/servers/{sid}")


def test_http_exception_line_precedes_4xx_request_line(member, cloud):
    unknown = str(uuid.uuid4())
    response = nova(member, "GET", f"/servers/{unknown}")
    request_id = response.headers["x-openstack-request-id"]
    lines = [line for line in (Path(cloud.log_dir) / "nova-api.log").read_text().splitlines()
             if request_id in line]
    assert len(lines) == 2
    assert lines[0].split()[3:5] == ["INFO", "nova.api.openstack.wsgi"]
    assert lines[0].endswith(f"HTTP exception thrown: Instance {unknown} could not be found.")
    assert lines[1].endswith("status: 404 len: 111 microversion: 2.1 time: " + lines[1].rsplit(" ", 1)[1])


# -- server groups -------------------------------------------------------------------
def test_anti_affinity_group_spreads_servers(member, admin):
    created = nova(member, "POST", "/os-server-groups", "latest",
                   json={"server_group": {"name": "ns-anti", "policy": "anti-affinity"}})
    assert created.status_code == 200
    group = created.json()["server_group"]
    assert (group["policy"], group["members"]) == ("anti-affinity", [])
    ids = []
    for n in range(2):
        spec = {"name": f"ns-anti-{n}", "imageRef": image_id(member), "flavorRef": "42", "networks": "none"}
        response = nova(member, "POST", "/servers", "latest",
                        json={"server": spec, "os:scheduler_hints": {"group": group["id"]}})
        assert response.status_code == 202
        ids.append(response.json()["server"]["id"])
        wait_for(member, ids[-1], "ACTIVE")
    hosts = {nova(admin, "GET", f"/servers/{sid}", "latest").json()["server"]["OS-EXT-SRV-ATTR:host"]
             for sid in ids}
    assert len(hosts) == 2
    shown = nova(member, "GET", f"/servers/{ids[0]}", "latest").json()["server"]
    assert shown["server_groups"] == [group["id"]]
    listed = nova(member, "GET", f"/os-server-groups/{group['id']}", "latest").json()["server_group"]
    assert sorted(listed["members"]) == sorted(ids)
    for sid in ids:
        nova(member, "DELETE", f"/servers/{sid}")
        wait_gone(member, sid)
    assert nova(member, "DELETE", f"/os-server-groups/{group['id']}", "latest").status_code == 204


# -- cost of one request with many servers ------------------------------------------------
class CountingDict(dict):
    """A dict that counts full passes over it."""

    passes = 0

    def __iter__(self):
        CountingDict.passes += 1
        return super().__iter__()

    def values(self):
        CountingDict.passes += 1
        return super().values()

    def items(self):
        CountingDict.passes += 1
        return super().items()


def test_show_and_list_do_not_scan_every_server(local_cloud):
    """2,000 servers in another project: a member's show and list never walk all of them."""
    local = local_cloud()
    image = local.cloud.image.default_image_id
    local.call("PUT", f"/compute/v2.1/os-quota-sets/{local.cloud.admin_project.id}",
               {"quota_set": {"instances": -1, "cores": -1, "ram": -1}}, token="admin")
    for n in range(2000):
        created = local.call("POST", "/compute/v2.1/servers", {"server": {
            "name": f"ns-many-{n}", "imageRef": image, "flavorRef": "42", "networks": []}}, token="admin")
        assert created.status == 202
    mine = local.call("POST", "/compute/v2.1/servers", {"server": {
        "name": "ns-mine", "imageRef": image, "flavorRef": "42", "networks": []}}).payload["server"]["id"]
    compute = local.cloud.compute
    compute.servers = CountingDict(compute.servers)
    CountingDict.passes = 0
    shown = local.call("GET", f"/compute/v2.1/servers/{mine}")
    listed = local.call("GET", "/compute/v2.1/servers/detail")
    missing = local.call("GET", f"/compute/v2.1/servers/{uuid.uuid4()}")
    assert (shown.status, listed.status, missing.status) == (200, 200, 404)
    assert [s["id"] for s in listed.payload["servers"]] == [mine]
    assert CountingDict.passes == 0
