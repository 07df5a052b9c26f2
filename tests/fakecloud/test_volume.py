"""Cinder v3 of the embedded cloud: discovery, microversions, volume/snapshot life, attachments."""
from __future__ import annotations


import gevent
import openstack
import pytest
import requests
from waiting import wait_until

VOLUME = {"service_type": "block-storage"}
NOT_DELETABLE = "Invalid volume: Volume status must be available or error"


def wait_for_status(session, path: str, wanted: str, timeout: float = 10.0) -> dict | None:
    """Poll a volume/snapshot until it has `wanted` status (None once it is gone)."""
    def check():
        response = session.get(path, endpoint_filter=VOLUME, raise_exc=False)
        if response.status_code == 404:
            return {"record": None}
        record = next(iter(response.json().values()))
        return {"record": record} if record["status"] == wanted else None
    return wait_until(check, f"{path} {wanted}", timeout)["record"]


def wait_gone(session, path: str, timeout: float = 10.0) -> None:
    wait_until(lambda: session.get(path, endpoint_filter=VOLUME, raise_exc=False).status_code == 404,
               f"{path} deleted", timeout)


def create_volume(session, name: str, size: int = 1) -> dict:
    response = session.post("/volumes", json={"volume": {"size": size, "name": name}},
                            endpoint_filter=VOLUME)
    assert response.status_code == 202
    return response.json()["volume"]


def test_version_documents(cloud):
    root = requests.get(f"{cloud.base_url}/volume", timeout=10)
    assert root.status_code == 300
    v3 = requests.get(f"{cloud.base_url}/volume/v3", timeout=10)
    assert v3.status_code == 200
    for document in (root.json(), v3.json()):
        (version,) = document["versions"]
        assert (version["id"], version["min_version"], version["version"]) == ("v3.0", "3.0", "3.70")
        assert {"rel": "self", "href": f"{cloud.base_url}/volume/v3/"} in version["links"]


def test_microversion_negotiation(member, cloud):
    plain = member.get("/volumes", endpoint_filter=VOLUME)
    assert plain.headers["OpenStack-API-Version"] == "volume 3.0"
    asked = member.get("/volumes", endpoint_filter=VOLUME,
                       headers={"OpenStack-API-Version": "volume 3.63"})
    assert asked.headers["OpenStack-API-Version"] == "volume 3.63"
    latest = member.get("/volumes", endpoint_filter=VOLUME,
                        headers={"OpenStack-API-Version": "volume latest"})
    assert latest.headers["OpenStack-API-Version"] == "volume 3.70"
    too_new = member.get("/volumes", endpoint_filter=VOLUME, raise_exc=False,
                         headers={"OpenStack-API-Version": "volume 3.999"})
    assert too_new.status_code == 406
    assert too_new.json()["notAcceptable"]["message"].startswith("Version 3.999 is not supported")


def test_volume_lifecycle_and_views(member, cloud):
    volume = create_volume(member, "ns-vol-life", size=2)
    assert volume["status"] == "creating" and volume["size"] == 2
    path = f"/volumes/{volume['id']}"
    shown = wait_for_status(member, path, "available")
    assert {"attachments", "availability_zone", "bootable", "links", "metadata",
            "os-vol-tenant-attr:tenant_id", "volume_type"} <= set(shown)
    assert shown["volume_type"] == "__DEFAULT__"
    assert "volume_type_id" not in shown
    newer = member.get(path, endpoint_filter=VOLUME,
                       headers={"OpenStack-API-Version": "volume 3.63"}).json()["volume"]
    assert newer["volume_type_id"]
    summary = member.get("/volumes", endpoint_filter=VOLUME).json()["volumes"]
    assert {"id": volume["id"], "name": "ns-vol-life"}.items() <= \
        next(v for v in summary if v["id"] == volume["id"]).items()
    detail = member.get("/volumes/detail?status=available", endpoint_filter=VOLUME).json()
    assert volume["id"] in [v["id"] for v in detail["volumes"]]
    # the project id in the path is accepted too, as in a catalog with $(project_id)s
    project = member.get_project_id()
    with_project = requests.get(f"{cloud.base_url}/volume/v3/{project}/volumes/{volume['id']}",
                                headers={"X-Auth-Token": member.get_token()}, timeout=10)
    assert with_project.json()["volume"]["id"] == volume["id"]
    assert with_project.headers["x-openstack-request-id"].startswith("req-")
    deleted = member.delete(path, endpoint_filter=VOLUME)
    assert deleted.status_code == 202
    assert member.get(path, endpoint_filter=VOLUME, raise_exc=False).json().get(
        "volume", {}).get("status") in ("deleting", None)
    wait_gone(member, path)


def test_error_bodies(member, cloud):
    missing = member.get("/volumes/00000000-0000-0000-0000-000000000000", endpoint_filter=VOLUME,
                         raise_exc=False)
    assert missing.status_code == 404
    assert missing.json() == {"itemNotFound": {"code": 404, "message": "Volume "
                              "00000000-0000-0000-0000-000000000000 could not be found."}}
    bad_size = member.post("/volumes", json={"volume": {"size": 0}}, endpoint_filter=VOLUME,
                           raise_exc=False)
    assert bad_size.status_code == 400 and "badRequest" in bad_size.json()
    no_token = requests.get(f"{cloud.base_url}/volume/v3/volumes", timeout=10)
    assert no_token.status_code == 401
    assert no_token.json()["error"]["message"] == "The request you have made requires authentication."


def test_other_project_cannot_see_volume(member, admin):
    volume = create_volume(admin, "ns-vol-admin")
    try:
        hidden = member.get(f"/volumes/{volume['id']}", endpoint_filter=VOLUME, raise_exc=False)
        assert hidden.status_code == 404
        everyone = admin.get("/volumes/detail?all_tenants=1", endpoint_filter=VOLUME).json()
        assert volume["id"] in [v["id"] for v in everyone["volumes"]]
        assert "os-vol-host-attr:host" in everyone["volumes"][0]
    finally:
        wait_for_status(admin, f"/volumes/{volume['id']}", "available")
        admin.delete(f"/volumes/{volume['id']}", endpoint_filter=VOLUME)


def test_snapshots_block_volume_delete(member):
    volume = create_volume(member, "ns-vol-snap")
    wait_for_status(member, f"/volumes/{volume['id']}", "available")
    response = member.post("/snapshots", json={"snapshot": {"volume_id": volume["id"],
                                                            "name": "ns-snap"}},
                           endpoint_filter=VOLUME)
    assert response.status_code == 202
    snapshot = response.json()["snapshot"]
    assert snapshot["status"] == "creating" and snapshot["volume_id"] == volume["id"]
    wait_for_status(member, f"/snapshots/{snapshot['id']}", "available")
    listed = member.get("/snapshots", endpoint_filter=VOLUME).json()["snapshots"]
    assert snapshot["id"] in [s["id"] for s in listed]
    blocked = member.delete(f"/volumes/{volume['id']}", endpoint_filter=VOLUME, raise_exc=False)
    assert blocked.status_code == 400
    assert blocked.json()["badRequest"]["message"].startswith(NOT_DELETABLE)
    assert member.delete(f"/snapshots/{snapshot['id']}", endpoint_filter=VOLUME).status_code == 202
    wait_gone(member, f"/snapshots/{snapshot['id']}")
    assert member.delete(f"/volumes/{volume['id']}", endpoint_filter=VOLUME).status_code == 202
    wait_gone(member, f"/volumes/{volume['id']}")


def test_types_limits_quotas(member):
    types = member.get("/types", endpoint_filter=VOLUME).json()["volume_types"]
    assert [t["name"] for t in types] == ["__DEFAULT__"]
    before = member.get("/limits", endpoint_filter=VOLUME).json()["limits"]["absolute"]
    volume = create_volume(member, "ns-vol-limits", size=3)
    after = member.get("/limits", endpoint_filter=VOLUME).json()["limits"]["absolute"]
    assert after["totalVolumesUsed"] == before["totalVolumesUsed"] + 1
    assert after["totalGigabytesUsed"] == before["totalGigabytesUsed"] + 3
    project = member.get_project_id()
    quota = member.get(f"/os-quota-sets/{project}?usage=True", endpoint_filter=VOLUME).json()
    assert quota["quota_set"]["volumes"]["in_use"] == after["totalVolumesUsed"]
    wait_for_status(member, f"/volumes/{volume['id']}", "available")
    member.delete(f"/volumes/{volume['id']}", endpoint_filter=VOLUME)


def test_volume_log_has_request_ids(member, cloud):
    response = member.post("/volumes", json={"volume": {"size": 1, "name": "ns-vol-log"}},
                           endpoint_filter=VOLUME)
    request_id = response.headers["x-openstack-request-id"]
    volume = response.json()["volume"]
    wait_for_status(member, f"/volumes/{volume['id']}", "available")
    lines = [line for line in open(f"{cloud.log_dir}/cinder-volume.log") if request_id in line]
    assert any("Created volume successfully." in line for line in lines)
    assert all(" INFO cinder.volume." in line for line in lines)
    member.delete(f"/volumes/{volume['id']}", endpoint_filter=VOLUME)


def test_attachment_state_interface(local_cloud):
    local = local_cloud()
    response = local.call("POST", "/volume/v3/volumes", {"volume": {"size": 1, "name": "att"}})
    volume_id = response.payload["volume"]["id"]
    gevent.sleep(0.01)  # let the creating -> available transition run
    volumes = local.cloud.volume
    ids = ["req-00000000-0000-0000-0000-00000000a001"]

    def status() -> str:
        return local.call("GET", f"/volume/v3/volumes/{volume_id}").payload["volume"]["status"]

    assert status() == "available"
    volumes.reserve(volume_id, "server-1", ids)
    assert status() == "attaching"
    with pytest.raises(ValueError, match="status must be available"):
        volumes.reserve(volume_id, "server-2", ids)
    volumes.attach(volume_id, "server-1", "/dev/vdb", "compute-1", ids)
    shown = local.call("GET", f"/volume/v3/volumes/{volume_id}").payload["volume"]
    assert shown["status"] == "in-use"
    (attachment,) = shown["attachments"]
    assert {"server_id": "server-1", "device": "/dev/vdb", "host_name": "compute-1",
            "volume_id": volume_id}.items() <= attachment.items()
    assert attachment["attachment_id"] and attachment["attached_at"]
    refused = local.call("DELETE", f"/volume/v3/volumes/{volume_id}")
    assert refused.status == 400
    assert refused.payload["badRequest"]["message"].startswith(NOT_DELETABLE)
    volumes.begin_detaching(volume_id, ids)
    assert status() == "detaching"
    volumes.detach(volume_id, "server-1", ids)
    shown = local.call("GET", f"/volume/v3/volumes/{volume_id}").payload["volume"]
    assert (shown["status"], shown["attachments"]) == ("available", [])
    volumes.reserve(volume_id, "server-3", ids)
    volumes.unreserve(volume_id, ids)
    assert status() == "available"
    log = (local.cloud.logs.directory / "cinder-volume.log").read_text()
    assert f"Attaching volume {volume_id} to instance server-1 at mountpoint /dev/vdb" in log
    assert ids[0] in log


def test_attachments_api_reserves_lists_and_frees(member, admin):
    new_attach = {"OpenStack-API-Version": "volume 3.27"}
    volume = create_volume(member, "ns-vol-reserved")
    wait_for_status(member, f"/volumes/{volume['id']}", "available")
    server = "6f1c2f0e-0000-4000-8000-000000000001"
    # below 3.27 the API does not exist, as in Cinder
    assert member.get("/attachments", endpoint_filter=VOLUME, raise_exc=False).status_code == 404
    made = member.post("/attachments", json={"attachment": {"volume_uuid": volume["id"], "instance_uuid": server}},
                       endpoint_filter=VOLUME, headers=new_attach).json()["attachment"]
    assert {"status": "reserved", "instance": server, "volume_id": volume["id"]}.items() <= made.items()
    shown = member.get(f"/volumes/{volume['id']}", endpoint_filter=VOLUME).json()["volume"]
    assert (shown["status"], shown["attachments"]) == ("reserved", [])   # Cinder lists only attached ones
    listed = member.get("/attachments", params={"volume_id": volume["id"]}, endpoint_filter=VOLUME,
                        headers=new_attach).json()["attachments"]
    assert listed == [{"id": made["id"], "status": "reserved", "instance": server, "volume_id": volume["id"]}]
    assert member.get("/attachments", params={"volume_id": "nothing"}, endpoint_filter=VOLUME,
                      headers=new_attach).json()["attachments"] == []
    refused = member.delete(f"/volumes/{volume['id']}", endpoint_filter=VOLUME, raise_exc=False)
    assert refused.status_code == 400
    member.delete(f"/attachments/{made['id']}", endpoint_filter=VOLUME, headers=new_attach)
    assert member.get(f"/volumes/{volume['id']}", endpoint_filter=VOLUME).json()["volume"]["status"] == "available"
    # a reset to available/detached (admin) forgets the reservations too
    member.post("/attachments", json={"attachment": {"volume_uuid": volume["id"], "instance_uuid": server}},
                endpoint_filter=VOLUME, headers=new_attach)
    admin.post(f"/volumes/{volume['id']}/action", endpoint_filter=VOLUME,
               json={"os-reset_status": {"status": "available", "attach_status": "detached"}})
    assert member.get("/attachments", endpoint_filter=VOLUME, headers=new_attach).json()["attachments"] == []
    member.delete(f"/volumes/{volume['id']}", endpoint_filter=VOLUME)
    wait_gone(member, f"/volumes/{volume['id']}")


def test_openstacksdk_creates_and_deletes_volume(cloud):
    conn = openstack.connection.Connection(auth=cloud.credentials(), region_name="RegionOne")
    volume = conn.block_storage.create_volume(size=1, name="ns-sdk-volume")
    volume = conn.block_storage.wait_for_status(volume, "available", wait=10, interval=0.05)
    assert "ns-sdk-volume" in [v.name for v in conn.block_storage.volumes()]
    conn.block_storage.delete_volume(volume)
    conn.block_storage.wait_for_delete(volume, wait=10, interval=0.05)
    assert conn.block_storage.find_volume("ns-sdk-volume") is None
