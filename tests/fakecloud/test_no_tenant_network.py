"""`--no-tenant-network`: Neutron without a private network, as the real minimal stack."""
from __future__ import annotations

import time


def _wait_active(member, compute: str, server_id: str) -> dict:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        server = member.get(f"{compute}/servers/{server_id}").json()["server"]
        if server["status"] != "BUILD":
            return server
        time.sleep(0.2)
    raise AssertionError(f"server {server_id} still BUILD")


def _boot(member, compute: str, microversion: str, **extra):
    image = member.get(f"{compute.rsplit('/compute', 1)[0]}/image/v2/images").json()["images"][0]["id"]
    body = {"server": {"name": "no-net", "imageRef": image, "flavorRef": "42", **extra}}
    return member.post(f"{compute}/servers", json=body, raise_exc=False,
                       headers={"OpenStack-API-Version": f"compute {microversion}"})


def test_no_tenant_network_boots_without_addresses_and_refuses_auto(cloud_factory):
    cloud = cloud_factory(tenant_network=False, external_network=False, faults="none", delay_scale=0)
    member = cloud.session()
    compute = f"{cloud.base_url}/compute/v2.1"
    assert member.get(f"{cloud.base_url}/networking/v2.0/networks").json()["networks"] == []
    assert member.get(f"{cloud.base_url}/networking/v2.0/subnets").json()["subnets"] == []
    # Nova: no network asked for and none available -> a server with no port
    unasked = _boot(member, compute, "2.36")
    assert unasked.status_code == 202, unasked.text
    none = _boot(member, compute, "2.37", networks="none")
    assert none.status_code == 202, none.text
    for answer in (unasked, none):
        server = _wait_active(member, compute, answer.json()["server"]["id"])
        assert server["status"] == "ACTIVE" and server["addresses"] == {}
    # Nova: UnableToAutoAllocateNetwork (no auto-allocated topology in Neutron)
    auto = _boot(member, compute, "2.37", networks="auto")
    assert auto.status_code == 400
    project_id = member.get_project_id()
    assert auto.json()["badRequest"]["message"] == \
        f"Unable to automatically allocate a network for project {project_id}"


def test_no_tenant_network_keeps_the_external_network_without_a_router_interface(cloud_factory):
    cloud = cloud_factory(tenant_network=False, faults="none", delay_scale=0)
    admin = cloud.session(admin=True)
    networks = admin.get(f"{cloud.base_url}/networking/v2.0/networks").json()["networks"]
    assert [(n["name"], n["router:external"]) for n in networks] == [("public", True)]
    ports = admin.get(f"{cloud.base_url}/networking/v2.0/ports").json()["ports"]
    assert not [port for port in ports if port["device_owner"] == "network:router_interface"]
