"""Nova's createBackup and a rebuild's OS-DCF:diskConfig in the embedded cloud, over real HTTP:
the backup image in Glance, its rotation, the answer by microversion, Nova's error texts; the disk
config a rebuild asks for, checks and keeps (the two gaps Tempest found)."""
from __future__ import annotations

import uuid

import pytest

from novastress_locust.fakecloud import EmbeddedCloud
from test_compute import IMAGE, action, boot, nova, nova_error, wait_for
from test_snapshot import show_image, wait_image
from waiting import wait_until

STEP = 0.3  # seconds each backup step takes in the slow cloud


@pytest.fixture(scope="module")
def slow_cloud(tmp_path_factory):
    """Backup steps long enough to see every task state and to be refused mid-backup."""
    with EmbeddedCloud(log_dir=tmp_path_factory.mktemp("backup-logs"), faults="none", seed=13,
                       extra_args=["--delay", "build=0.2:0.2", "--delay", f"action={STEP}:{STEP}"]) as embedded:
        yield embedded


def backup(session, server_id: str, backup_type: str, rotation, microversion: str = "latest", **extra):
    name = f"ns-bkp-{backup_type}-{uuid.uuid4().hex[:6]}"
    return action(session, server_id, {"createBackup": {"name": name, "backup_type": backup_type,
                                                        "rotation": rotation, **extra}}, microversion)


def backups_of(session, server_id: str, backup_type: str) -> list[str]:
    """The ids of the server's backups of this type as Tempest lists them: Glance's filters on
    the image's properties, oldest first."""
    params = {"image_type": "backup", "backup_type": backup_type, "instance_uuid": server_id,
              "sort_key": "created_at", "sort_dir": "asc"}
    return [image["id"] for image in session.get("/v2/images", params=params,
                                                 endpoint_filter=IMAGE).json()["images"]]


def delete_images(session, image_ids) -> None:
    for image_id in image_ids:
        session.delete(f"/v2/images/{image_id}", endpoint_filter=IMAGE, raise_exc=False)


def test_a_backup_is_a_backup_image_and_rotation_deletes_the_oldest(member):
    sid = boot(member, f"ns-bkp-{uuid.uuid4().hex[:6]}")["id"]
    made: list[str] = []
    try:
        wait_for(member, sid, "ACTIVE")
        for _ in range(3):
            response = backup(member, sid, "daily", 2, metadata={"purpose": "nightly"})
            assert response.status_code == 202, response.text
            assert "Location" not in response.headers   # 2.45+: the id in the body
            assert list(response.json()) == ["image_id"]
            made.append(response.json()["image_id"])
            wait_for(member, sid, "ACTIVE")   # the backup (and its rotation) is over
        image = wait_image(member, made[-1], "active")
        assert (image["image_type"], image["backup_type"], image["instance_uuid"]) == ("backup", "daily", sid)
        assert (image["purpose"], image["visibility"], image["owner"]) == ("nightly", "private",
                                                                          member.get_project_id())
        assert image["base_image_ref"] and image["disk_format"] == "qcow2"
        # rotation 2: the oldest of three went, in Glance too
        assert show_image(member, made[0]).status_code == 404
        assert backups_of(member, sid, "daily") == made[1:]
        # another backup type rotates apart; rotation 0 then deletes every backup of its type
        weekly = backup(member, sid, "weekly", 5, "2.45")
        assert weekly.status_code == 202, weekly.text
        made.append(weekly.json()["image_id"])
        wait_for(member, sid, "ACTIVE")
        last = backup(member, sid, "daily", 0)
        assert last.status_code == 202, last.text
        made.append(last.json()["image_id"])
        wait_for(member, sid, "ACTIVE")
        assert backups_of(member, sid, "daily") == []
        assert backups_of(member, sid, "weekly") == [weekly.json()["image_id"]]
        # the instance action is createBackup, its event the compute's backup_instance
        actions = nova(member, "GET", f"/servers/{sid}/os-instance-actions", "2.84").json()["instanceActions"]
        request_id = last.headers["x-openstack-request-id"]
        record = next(a for a in actions if a["request_id"] == request_id)
        assert record["action"] == "createBackup"
        events = nova(member, "GET", f"/servers/{sid}/os-instance-actions/{request_id}", "2.84"
                      ).json()["instanceAction"]["events"]
        assert [(e["event"], e["result"]) for e in events] == [("compute_backup_instance", "Success")]
    finally:
        nova(member, "DELETE", f"/servers/{sid}")
        delete_images(member, made)


def test_before_2_45_a_location_header_when_rotation_keeps_any(member, cloud):
    sid = boot(member, f"ns-bkp-old-{uuid.uuid4().hex[:6]}")["id"]
    made: list[str] = []
    try:
        wait_for(member, sid, "ACTIVE")
        response = backup(member, sid, "daily", 1, "2.44")
        assert response.status_code == 202 and response.content == b"", response.text
        location = response.headers["Location"]
        # createBackup joins the compute API's URL and images/<id> (createImage's is Glance's)
        assert location.startswith(cloud.base_url) and "/v2.1/images/" in location, location
        image_id = location.rpartition("/")[2]
        made.append(image_id)
        assert wait_image(member, image_id, "active")["image_type"] == "backup"
        wait_for(member, sid, "ACTIVE")
        # rotation 0: no Location (nothing kept), and the backup itself is rotated out
        dropped = backup(member, sid, "daily", "0", "2.1")
        assert dropped.status_code == 202 and dropped.content == b"", dropped.text
        assert "Location" not in dropped.headers
        wait_for(member, sid, "ACTIVE")
        assert backups_of(member, sid, "daily") == []
        assert show_image(member, image_id).status_code == 404
    finally:
        nova(member, "DELETE", f"/servers/{sid}")
        delete_images(member, made)


def test_backup_request_errors_as_nova_words_them(member):
    sid = boot(member, f"ns-bkp-err-{uuid.uuid4().hex[:6]}")["id"]
    try:
        wait_for(member, sid, "ACTIVE")
        before = backups_of(member, sid, "daily")
        entity = {"name": "b", "backup_type": "daily", "rotation": 1}
        cases = [
            ({key: value for key, value in entity.items() if key != "name"}, "createBackup",
             "'name' is a required property"),
            ({"name": "b", "rotation": 1}, "createBackup", "'backup_type' is a required property"),
            ({"name": "b", "backup_type": "daily"}, "createBackup", "'rotation' is a required property"),
            ({**entity, "color": "red"}, "createBackup", "Additional properties are not allowed ('color' was "
                                                         "unexpected)"),
            ({**entity, "rotation": -1}, "rotation", "-1 is less than the minimum of 0"),
            ({**entity, "rotation": "-1"}, "rotation", "'-1' does not match '^[0-9]*$'"),
            ({**entity, "rotation": "two"}, "rotation", "'two' does not match '^[0-9]*$'"),
            ({**entity, "rotation": 1.5}, "rotation", "1.5 is not of type 'integer', 'string'"),
            ({**entity, "rotation": None}, "rotation", "None is not of type 'integer', 'string'"),
            ({**entity, "backup_type": 7}, "backup_type", "7 is not of type 'string'"),
            # a field's own error comes before a missing one, as Nova's schema walks them
            ({"name": "b", "rotation": -1}, "rotation", "-1 is less than the minimum of 0"),
        ]
        for body, field, message in cases:
            value = body if field == "createBackup" else body[field]
            nova_error(action(member, sid, {"createBackup": body}), 400, "badRequest",
                       f"Invalid input for field/attribute {field}. Value: {value}. {message}")
        nova_error(action(member, sid, {"createBackup": "daily"}), 400, "badRequest",
                   "Invalid input for field/attribute createBackup. Value: daily. 'daily' is not of type 'object'")
        nova_error(action(member, sid, {"createBackup": {**entity, "metadata": {"k": 1}}}), 400, "badRequest",
                   "Invalid input for field/attribute k. Value: 1. 1 is not of type 'string'")
        assert backups_of(member, sid, "daily") == before   # a refused backup makes no image
        # a vm_state Nova takes no backup in: 409 with the action's name
        assert action(member, sid, {"shelve": None}).status_code == 202
        wait_for(member, sid, "SHELVED_OFFLOADED")
        nova_error(backup(member, sid, "daily", 1), 409, "conflictingRequest",
                   f"Cannot 'createBackup' instance {sid} while it is in vm_state shelved_offloaded")
        assert backups_of(member, sid, "daily") == before
    finally:
        nova(member, "DELETE", f"/servers/{sid}")


def test_backup_task_states_and_a_second_backup_refused_mid_backup(slow_cloud):
    slow = slow_cloud.session()
    sid = boot(slow, "ns-bkp-steps")["id"]
    made: list[str] = []
    try:
        wait_for(slow, sid, "ACTIVE")
        response = backup(slow, sid, "daily", 1)
        assert response.status_code == 202, response.text
        made.append(response.json()["image_id"])
        nova_error(backup(slow, sid, "daily", 1), 409, "conflictingRequest",
                   f"Cannot 'createBackup' instance {sid} while it is in task_state image_backup")
        tasks: list = []

        def task_over():
            server = nova(slow, "GET", f"/servers/{sid}", "latest").json()["server"]
            assert server["status"] == "ACTIVE"   # a backup keeps the server ACTIVE
            if not tasks or tasks[-1] != server["OS-EXT-STS:task_state"]:
                tasks.append(server["OS-EXT-STS:task_state"])
            return server["OS-EXT-STS:task_state"] is None
        wait_until(task_over, f"backup of {sid} over", 20, interval=0.02)
        assert tasks == ["image_backup", "image_pending_upload", "image_uploading", None]
        assert wait_image(slow, made[0], "active")["image_type"] == "backup"
    finally:
        nova(slow, "DELETE", f"/servers/{sid}")
        delete_images(slow, made)


def test_a_rebuild_sets_checks_and_keeps_the_disk_config(member, admin):
    server = boot(member, f"ns-rbd-dcf-{uuid.uuid4().hex[:6]}")
    sid, path = server["id"], f"/servers/{server['id']}"
    disabled = None
    try:
        image = wait_for(member, sid, "ACTIVE")["image"]["id"]
        for asked in ("AUTO", "MANUAL", "AUTO"):
            response = action(member, sid, {"rebuild": {"imageRef": image, "OS-DCF:diskConfig": asked}})
            assert response.status_code == 202, response.text
            assert response.json()["server"]["OS-DCF:diskConfig"] == asked
            assert wait_for(member, sid, "ACTIVE")["OS-DCF:diskConfig"] == asked
        # not given: the new image's auto_disk_config decides, MANUAL when it has none (so at boot)
        assert server["OS-DCF:diskConfig"] == "MANUAL"
        assert action(member, sid, {"rebuild": {"imageRef": image}}).json()["server"]["OS-DCF:diskConfig"] == "MANUAL"
        wait_for(member, sid, "ACTIVE")
        nova_error(action(member, sid, {"rebuild": {"imageRef": image, "OS-DCF:diskConfig": "SOMETIMES"}}),
                   400, "badRequest", "Invalid input for field/attribute OS-DCF:diskConfig. Value: SOMETIMES. "
                                      "'SOMETIMES' is not one of ['AUTO', 'MANUAL']")
        nova_error(action(member, sid, {"rebuild": {"imageRef": image, "accessIPv4": "300.1.1.1"}}),
                   400, "badRequest", "Invalid input for field/attribute accessIPv4. Value: 300.1.1.1. "
                                      "'300.1.1.1' is not a 'ipv4'")
        # what the rebuild schema of the request's microversion does not take: Nova's 400, nothing changed
        for body, microversion, unexpected in (({"bogus": 1}, "latest", "'bogus' was"),
                                               ({"user_data": "", "key_name": None}, "2.53", "'key_name', 'user_data' were"),
                                               ({"personality": []}, "2.57", "'personality' was")):
            refused = action(member, sid, {"rebuild": {"imageRef": image, **body}}, microversion)
            assert refused.status_code == 400, refused.text
            assert f"Additional properties are not allowed ({unexpected} unexpected)" in refused.json()["badRequest"][
                "message"], refused.text
            assert nova(member, "GET", path).json()["server"]["status"] == "ACTIVE"
        # an image that disables automatic disk resize refuses AUTO, and gives MANUAL otherwise
        created = admin.post("/v2/images", endpoint_filter=IMAGE, json={
            "name": "ns-rbd-dcf-disabled", "disk_format": "qcow2", "container_format": "bare",
            "visibility": "public", "auto_disk_config": "disabled"})
        assert created.status_code == 201, created.text
        disabled = created.json()["id"]
        uploaded = admin.put(f"/v2/images/{disabled}/file", endpoint_filter=IMAGE, data=b"disk" * 64,
                             headers={"Content-Type": "application/octet-stream"})
        assert uploaded.status_code == 204, uploaded.text
        nova_error(action(member, sid, {"rebuild": {"imageRef": disabled, "OS-DCF:diskConfig": "AUTO"}}),
                   400, "badRequest", f"Requested image {disabled} has automatic disk resize disabled.")
        assert nova(member, "GET", path).json()["server"]["image"]["id"] == image   # nothing changed
        rebuilt = action(member, sid, {"rebuild": {"imageRef": disabled}})
        assert rebuilt.status_code == 202, rebuilt.text
        assert wait_for(member, sid, "ACTIVE")["OS-DCF:diskConfig"] == "MANUAL"
        # a boot of that image is judged the same way, before anything is made
        refused = nova(member, "POST", "/servers", "latest", json={"server": {
            "name": "ns-rbd-dcf-boot", "imageRef": disabled, "flavorRef": "42", "networks": "none",
            "OS-DCF:diskConfig": "AUTO"}})
        nova_error(refused, 400, "badRequest", f"Requested image {disabled} has automatic disk resize disabled.")
        assert not [s for s in nova(member, "GET", "/servers").json()["servers"] if s["name"] == "ns-rbd-dcf-boot"]
    finally:
        nova(member, "DELETE", path)
        if disabled is not None:
            wait_until(lambda: nova(member, "GET", path).status_code == 404, f"server {sid} deleted", 15)
            admin.delete(f"/v2/images/{disabled}", endpoint_filter=IMAGE, raise_exc=False)
