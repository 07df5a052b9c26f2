"""Placement of the embedded cloud: discovery, providers, microversions, allocations."""
from __future__ import annotations

import uuid

import openstack
import requests

PLACEMENT = {"service_type": "placement"}
LATEST = {"OpenStack-API-Version": "placement latest"}


def test_root_document(cloud):
    response = requests.get(f"{cloud.base_url}/placement", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"versions": [{"id": "v1.0", "max_version": "1.39",
                                             "min_version": "1.0", "status": "CURRENT",
                                             "links": [{"rel": "self", "href": ""}]}]}
    assert response.headers["OpenStack-API-Version"] == "placement 1.0"
    assert response.headers["x-openstack-request-id"].startswith("req-")


def test_member_is_forbidden_and_anonymous_unauthorized(member, cloud):
    forbidden = member.get("/resource_providers", endpoint_filter=PLACEMENT, raise_exc=False)
    assert forbidden.status_code == 403
    (error,) = forbidden.json()["errors"]
    assert error["status"] == 403 and error["request_id"].startswith("req-")
    anonymous = requests.get(f"{cloud.base_url}/placement/resource_providers", timeout=10)
    assert anonymous.status_code == 401


def test_providers_inventories_usages(admin):
    providers = admin.get("/resource_providers", endpoint_filter=PLACEMENT,
                          headers=LATEST).json()["resource_providers"]
    assert sorted(p["name"] for p in providers) == ["compute-1", "compute-2", "compute-3"]
    provider = providers[0]
    assert provider["root_provider_uuid"] == provider["uuid"]
    assert provider["parent_provider_uuid"] is None
    shown = admin.get(f"/resource_providers/{provider['uuid']}", endpoint_filter=PLACEMENT,
                      headers=LATEST)
    assert shown.headers["OpenStack-API-Version"] == "placement 1.39"
    assert shown.json()["name"] == provider["name"]
    inventories = admin.get(f"/resource_providers/{provider['uuid']}/inventories",
                            endpoint_filter=PLACEMENT).json()["inventories"]
    assert set(inventories) == {"VCPU", "MEMORY_MB", "DISK_GB"}
    assert inventories["DISK_GB"]["total"] == 100000
    usages = admin.get(f"/resource_providers/{provider['uuid']}/usages",
                       endpoint_filter=PLACEMENT).json()["usages"]
    assert set(usages) == set(inventories)
    named = admin.get("/resource_providers?name=compute-2", endpoint_filter=PLACEMENT).json()
    assert [p["name"] for p in named["resource_providers"]] == ["compute-2"]


def test_microversion_errors_and_not_found(admin):
    too_new = admin.get("/resource_providers", endpoint_filter=PLACEMENT, raise_exc=False,
                        headers={"OpenStack-API-Version": "placement 1.99"})
    assert too_new.status_code == 406
    missing = admin.get(f"/resource_providers/{uuid.uuid4()}", endpoint_filter=PLACEMENT,
                        raise_exc=False)
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["title"] == "Not Found"


def test_allocations_put_get_delete(admin):
    provider = admin.get("/resource_providers?name=compute-1",
                         endpoint_filter=PLACEMENT).json()["resource_providers"][0]
    consumer = str(uuid.uuid4())
    usages_path = f"/resource_providers/{provider['uuid']}/usages"
    before = admin.get(usages_path, endpoint_filter=PLACEMENT).json()["usages"]
    body = {"allocations": {provider["uuid"]: {"resources": {"VCPU": 2, "MEMORY_MB": 512}}},
            "project_id": admin.get_project_id(), "user_id": admin.get_user_id(),
            "consumer_generation": None}
    put = admin.put(f"/allocations/{consumer}", json=body, endpoint_filter=PLACEMENT, headers=LATEST)
    assert put.status_code == 204
    shown = admin.get(f"/allocations/{consumer}", endpoint_filter=PLACEMENT, headers=LATEST).json()
    assert shown["allocations"][provider["uuid"]]["resources"] == {"VCPU": 2, "MEMORY_MB": 512}
    assert shown["consumer_generation"] == 1 and shown["project_id"] == admin.get_project_id()
    during = admin.get(usages_path, endpoint_filter=PLACEMENT).json()["usages"]
    assert during["VCPU"] == before["VCPU"] + 2
    stale = admin.put(f"/allocations/{consumer}", json=body, endpoint_filter=PLACEMENT,
                      headers=LATEST, raise_exc=False)
    assert stale.status_code == 409
    assert stale.json()["errors"][0]["code"] == "placement.concurrent_update"
    too_big = dict(body, consumer_generation=1, allocations={
        provider["uuid"]: {"resources": {"VCPU": 10 ** 9}}})
    refused = admin.put(f"/allocations/{consumer}", json=too_big, endpoint_filter=PLACEMENT,
                        headers=LATEST, raise_exc=False)
    assert refused.status_code == 409
    assert admin.delete(f"/allocations/{consumer}", endpoint_filter=PLACEMENT).status_code == 204
    assert admin.get(f"/allocations/{consumer}", endpoint_filter=PLACEMENT).json() == {"allocations": {}}
    assert admin.get(usages_path, endpoint_filter=PLACEMENT).json()["usages"] == before
    again = admin.delete(f"/allocations/{consumer}", endpoint_filter=PLACEMENT, raise_exc=False)
    assert again.status_code == 404


def test_claim_free_move_interface(local_cloud):
    local = local_cloud(host_capacity_vcpus=4)
    placement = local.cloud.placement
    project, user = local.cloud.demo_project.id, local.cloud.demo_user.id
    assert placement.claim("server-1", "compute-1", {"VCPU": 3, "MEMORY_MB": 64}, project, user)
    assert not placement.claim("server-2", "compute-1", {"VCPU": 2}, project, user)
    assert placement.claim("server-2", "compute-2", {"VCPU": 2}, project, user)
    assert placement.usage("compute-1")["VCPU"] == 3
    rp1 = placement.provider_of_host["compute-1"]
    shown = local.call("GET", "/placement/allocations/server-1", token="admin").payload
    assert shown["allocations"][rp1]["resources"] == {"VCPU": 3, "MEMORY_MB": 64}
    assert placement.allocations_of("server-1") == shown["allocations"]
    assert not placement.move("server-1", "compute-2", {"VCPU": 3})  # 2 + 3 > 4
    assert placement.move("server-1", "compute-3", {"VCPU": 3})
    assert placement.usage("compute-1")["VCPU"] == 0 and placement.usage("compute-3")["VCPU"] == 3
    placement.free("server-1")
    placement.free("server-1")  # freeing twice is harmless, as a retried delete
    assert placement.allocations_of("server-1") == {}
    usages = local.call("GET", f"/placement/resource_providers/{rp1}/usages", token="admin").payload
    assert usages["usages"]["VCPU"] == 0


def test_openstacksdk_lists_providers(cloud):
    conn = openstack.connection.Connection(auth=cloud.credentials(admin=True), region_name="RegionOne")
    assert {"compute-1", "compute-2", "compute-3"} <= {rp.name for rp in conn.placement.resource_providers()}


def test_a_version_header_naming_other_services_too_is_read_for_placement_alone(admin):
    # microversion_parse, as Placement uses it: the placement entry of the list, else the minimum
    for header, answered in (("compute 2.53, placement 1.28", "placement 1.28"), ("compute 2.53", "placement 1.0")):
        response = admin.get("/resource_providers", endpoint_filter=PLACEMENT,
                             headers={"OpenStack-API-Version": header})
        assert response.status_code == 200 and response.headers["OpenStack-API-Version"] == answered, header
