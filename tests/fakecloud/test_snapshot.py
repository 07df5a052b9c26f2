"""Snapshots (Nova's createImage) in the embedded cloud: Glance image, task states, logs, races."""
from __future__ import annotations

import time
from pathlib import Path

import openstack
import pytest

from novastress_locust.fakecloud import EmbeddedCloud
from test_compute import IMAGE, action, boot, nova, nova_error, wait_for, wait_gone
from waiting import wait_until

SNAPSHOT_STEP = 0.4  # seconds each snapshot step takes in the slow cloud


@pytest.fixture(scope="module")
def slow_cloud(tmp_path_factory):
    """Snapshot steps long enough to see every task state and to delete the server mid-snapshot."""
    with EmbeddedCloud(log_dir=tmp_path_factory.mktemp("snapshot-logs"), faults="none", seed=11,
                       extra_args=["--delay", "build=0.3:0.3", "--delay", "delete=0.2:0.2",
                                   "--delay", f"action={SNAPSHOT_STEP}:{SNAPSHOT_STEP}"]) as embedded:
        yield embedded


@pytest.fixture(scope="module")
def slow(slow_cloud):
    return slow_cloud.session()


def show_image(session, image_id: str):
    return session.get(f"/v2/images/{image_id}", endpoint_filter=IMAGE, raise_exc=False)


def wait_image(session, image_id: str, status: str, timeout: float = 20.0) -> dict:
    def check():
        response = show_image(session, image_id)
        assert response.status_code == 200, response.text
        return response.json() if response.json()["status"] == status else None
    return wait_until(check, f"image {image_id} {status}", timeout, interval=0.05)


def compute_logs(cloud) -> str:
    return "".join(path.read_text() for path in sorted(Path(cloud.log_dir).glob("nova-compute-*.log")))


def test_openstacksdk_create_server_image_waits_until_active(cloud, member):
    connection = openstack.connection.Connection(auth=cloud.credentials(), region_name="RegionOne",
                                                 auth_type="password", compute_api_version="2.95")
    server = boot(member, "ns-sdk-snap-server")
    wait_for(member, server["id"], "ACTIVE")
    try:
        image = connection.compute.create_server_image(server["id"], "ns-sdk-snap", metadata={"purpose": "test"},
                                                       wait=True, timeout=60)
        assert image.status == "active"
        shown = member.get(f"/v2/images/{image.id}", endpoint_filter=IMAGE).json()
        project = member.get_project_id()
        assert (shown["name"], shown["owner"], shown["visibility"]) == ("ns-sdk-snap", project, "private")
        assert (shown["image_type"], shown["instance_uuid"], shown["purpose"]) == ("snapshot", server["id"], "test")
        base = next(i for i in member.get("/v2/images", endpoint_filter=IMAGE).json()["images"]
                    if i["name"] == "cirros-0.6.2-x86_64-disk")
        assert shown["base_image_ref"] == base["id"]
        assert shown["size"] > 0 and shown["checksum"] and shown["disk_format"] == "qcow2"
        # lists filter snapshots by owner and name, as for any image
        listed = member.get("/v2/images", params={"owner": project, "name": "ns-sdk-snap"},
                            endpoint_filter=IMAGE).json()["images"]
        assert [i["id"] for i in listed] == [image.id]
        other = member.get("/v2/images", params={"owner": base["owner"], "name": "ns-sdk-snap"},
                           endpoint_filter=IMAGE).json()["images"]
        assert other == []
        connection.image.delete_image(image.id)
        assert show_image(member, image.id).status_code == 404
    finally:
        nova(member, "DELETE", f"/servers/{server['id']}")
        connection.close()


def test_task_states_image_states_logs_and_instance_action(slow, slow_cloud):
    sid = boot(slow, "ns-snap-steps")["id"]
    wait_for(slow, sid, "ACTIVE")
    response = action(slow, sid, {"createImage": {"name": "ns-snap-steps-image"}}, "2.45")
    assert response.status_code == 202, response.text
    image_id = response.json()["image_id"]
    assert "Location" not in response.headers
    request_id = response.headers["x-openstack-request-id"]
    tasks: list = []
    images: list = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        server = nova(slow, "GET", f"/servers/{sid}", "latest").json()["server"]
        image = show_image(slow, image_id).json()
        assert server["status"] == "ACTIVE"  # a snapshot keeps the server ACTIVE
        for seen, value in ((tasks, server["OS-EXT-STS:task_state"]), (images, image["status"])):
            if not seen or seen[-1] != value:
                seen.append(value)
        if server["OS-EXT-STS:task_state"] is None:
            break
        time.sleep(0.02)
    # the API's image_snapshot_pending, taken by the compute's snapshot_instance, then its driver's steps
    assert tasks == ["image_snapshot_pending", "image_snapshot", "image_pending_upload", "image_uploading", None]
    assert images == ["queued", "saving", "active"]
    # another snapshot is refused while one runs, and refused with the task state
    assert action(slow, sid, {"createImage": {"name": "ns-snap-2"}}).status_code == 202
    nova_error(action(slow, sid, {"createImage": {"name": "ns-snap-3"}}), 409, "conflictingRequest",
               f"Cannot 'createImage' instance {sid} while it is in task_state image_snapshot_pending")
    wait_for(slow, sid, "ACTIVE")
    logs = compute_logs(slow_cloud)
    for message in ("instance snapshotting", "seconds to snapshot the instance on the hypervisor."):
        line = next(line for line in logs.splitlines() if message in line and request_id in line)
        assert f"[instance: {sid}]" in line and " INFO nova.compute.manager " in line
    actions = nova(slow, "GET", f"/servers/{sid}/os-instance-actions", "2.84").json()["instanceActions"]
    snapshot = next(a for a in actions if a["request_id"] == request_id)
    assert snapshot["action"] == "createImage"
    events = nova(slow, "GET", f"/servers/{sid}/os-instance-actions/{request_id}", "2.84"
                  ).json()["instanceAction"]["events"]
    assert [(e["event"], e["result"]) for e in events] == [("compute_snapshot_instance", "Success")]
    for image in slow.get("/v2/images", params={"owner": slow.get_project_id()},
                          endpoint_filter=IMAGE).json()["images"]:
        if image["name"].startswith("ns-snap-"):
            assert slow.delete(f"/v2/images/{image['id']}", endpoint_filter=IMAGE).status_code == 204
    nova(slow, "DELETE", f"/servers/{sid}")


def test_location_header_before_2_45_and_request_errors(member, cloud):
    sid = boot(member, "ns-snap-old")["id"]
    wait_for(member, sid, "ACTIVE")
    response = action(member, sid, {"createImage": {"name": "ns-snap-old-image"}}, "2.1")
    assert response.status_code == 202 and response.content == b""
    location = response.headers["Location"]
    assert location.startswith(f"{cloud.base_url}/image/images/")
    image_id = location.rpartition("/")[2]
    wait_image(member, image_id, "active")
    nova_error(action(member, sid, {"createImage": {}}), 400, "badRequest",
               "Invalid input for field/attribute createImage. Value: {}. 'name' is a required property")
    nova_error(action(member, sid, {"createImage": {"name": "x", "color": "red"}}), 400, "badRequest",
               "Invalid input for field/attribute createImage. Value: {'name': 'x', 'color': 'red'}. "
               "Additional properties are not allowed ('color' was unexpected)")
    assert action(member, sid, {"createImage": {"name": "x", "metadata": {"k": 1}}}).status_code == 400
    assert member.delete(f"/v2/images/{image_id}", endpoint_filter=IMAGE).status_code == 204
    nova(member, "DELETE", f"/servers/{sid}")


def test_allowed_in_shutoff_paused_suspended_refused_when_shelved(member):
    sid = boot(member, "ns-snap-states")["id"]
    wait_for(member, sid, "ACTIVE")
    made = []
    for pause, status, resume in (({"os-stop": None}, "SHUTOFF", {"os-start": None}),
                                  ({"pause": None}, "PAUSED", {"unpause": None}),
                                  ({"suspend": None}, "SUSPENDED", {"resume": None})):
        assert action(member, sid, pause).status_code == 202
        wait_for(member, sid, status)
        response = action(member, sid, {"createImage": {"name": f"ns-snap-{status.lower()}"}})
        assert response.status_code == 202, response.text
        made.append(response.json()["image_id"])
        wait_for(member, sid, status)
        assert action(member, sid, resume).status_code == 202
        wait_for(member, sid, "ACTIVE")
    for image_id in made:
        assert wait_image(member, image_id, "active")["image_type"] == "snapshot"
        member.delete(f"/v2/images/{image_id}", endpoint_filter=IMAGE)
    assert action(member, sid, {"shelve": None}).status_code == 202
    wait_for(member, sid, "SHELVED_OFFLOADED")
    before = {i["id"] for i in member.get("/v2/images", endpoint_filter=IMAGE).json()["images"]}
    nova_error(action(member, sid, {"createImage": {"name": "ns-snap-shelved"}}), 409, "conflictingRequest",
               f"Cannot 'createImage' instance {sid} while it is in vm_state shelved_offloaded")
    after = {i["id"] for i in member.get("/v2/images", endpoint_filter=IMAGE).json()["images"]}
    assert after == before  # a refused snapshot makes no image
    nova(member, "DELETE", f"/servers/{sid}")


def test_delete_mid_snapshot_deletes_the_partial_image_with_a_warning(slow, slow_cloud):
    sid = boot(slow, "ns-snap-race")["id"]
    wait_for(slow, sid, "ACTIVE")
    response = action(slow, sid, {"createImage": {"name": "ns-snap-race-image"}})
    assert response.status_code == 202, response.text
    image_id = response.json()["image_id"]
    request_id = response.headers["x-openstack-request-id"]
    assert show_image(slow, image_id).json()["status"] == "queued"
    assert nova(slow, "DELETE", f"/servers/{sid}").status_code == 204
    wait_gone(slow, sid)
    assert show_image(slow, image_id).status_code == 404
    warnings = [line for line in compute_logs(slow_cloud).splitlines()
                if "Instance disappeared during snapshot" in line]
    assert len(warnings) == 1
    assert " WARNING nova.compute.manager " in warnings[0] and request_id in warnings[0]
    assert f"[instance: {sid}]" in warnings[0]
    glance = (Path(slow_cloud.log_dir) / "glance-api.log").read_text()
    assert f"Image {image_id} deleted" in glance


def test_image_deleted_mid_snapshot_ends_the_task_with_a_warning(slow, slow_cloud):
    sid = boot(slow, "ns-snap-gone")["id"]
    wait_for(slow, sid, "ACTIVE")
    response = action(slow, sid, {"createImage": {"name": "ns-snap-gone-image"}})
    image_id = response.json()["image_id"]
    assert slow.delete(f"/v2/images/{image_id}", endpoint_filter=IMAGE).status_code == 204
    wait_for(slow, sid, "ACTIVE")
    assert show_image(slow, image_id).status_code == 404
    assert any("Image not found during snapshot" in line and sid in line
               for line in compute_logs(slow_cloud).splitlines())
    nova(slow, "DELETE", f"/servers/{sid}")
