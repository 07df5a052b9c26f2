"""The planted race bugs compute owns: each made to fire (probability 1), then disarmed.

Every test drives the racing calls over real HTTP, finds the ERROR record in the log
file the fault names, sees the wrong state through the API and the record in
`/fakecloud/faults`; then disarms the fault and checks the same sequence is clean.
"""
from __future__ import annotations

import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from waiting import wait_until  # tests/ is on sys.path

COMPUTE = {"service_type": "compute"}
VOLUME = {"service_type": "block-storage"}
# oslo.log's record start (log-format.md): traceback lines carry no context bracket
RECORD_START = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \d+ [A-Z]+ \S+ \[(None req-|req-|-\])")


def start(cloud_factory, fault: str, *delays: str, scale: float = 1.0):
    extra = ["--fault-probability", f"{fault}=1"]
    for delay in delays:
        extra += ["--delay", delay]
    embedded = cloud_factory(faults=fault, seed=11, delay_scale=scale, extra_args=extra)
    return embedded, embedded.session(), embedded.session(admin=True)


def nova(session, method: str, path: str, global_id: str | None = None, **kwargs):
    headers = {"X-OpenStack-Request-ID": global_id} if global_id else {}
    return session.request(path, method, endpoint_filter=COMPUTE, microversion="latest", headers=headers,
                           raise_exc=False, **kwargs)


def boot(session, name: str, global_id: str | None = None):
    images = session.get("/v2/images", endpoint_filter={"service_type": "image"}).json()["images"]
    response = nova(session, "POST", "/servers", global_id, json={"server": {
        "name": name, "imageRef": images[0]["id"], "flavorRef": "42", "networks": "none"}})
    assert response.status_code == 202, response.text
    return response.json()["server"]["id"], response.headers["x-openstack-request-id"]


def server_in(session, server_id: str, *statuses: str):
    def check():
        response = nova(session, "GET", f"/servers/{server_id}")
        if response.status_code == 200:
            server = response.json()["server"]
            if server["status"] in statuses and server["OS-EXT-STS:task_state"] is None:
                return server
        return None
    return wait_until(check, f"{server_id} in {statuses}")


def gone(session, server_id: str) -> None:
    wait_until(lambda: nova(session, "GET", f"/servers/{server_id}").status_code == 404, f"{server_id} gone")


def fired(embedded, admin_session, fault: str) -> list[dict]:
    response = requests.get(f"{embedded.base_url}/fakecloud/faults",
                            headers={"X-Auth-Token": admin_session.get_token()}, timeout=10)
    assert response.status_code == 200
    return [record for record in response.json()["fired"] if record["fault"] == fault]


def disarm(embedded, admin_session, fault: str) -> None:
    response = requests.put(f"{embedded.base_url}/fakecloud/faults/{fault}", json={"armed": False},
                            headers={"X-Auth-Token": admin_session.get_token()}, timeout=10)
    assert response.status_code == 200


def records(log: Path) -> list[list[str]]:
    """The log's records, a multi-line record (traceback) grouped under its first line."""
    grouped: list[list[str]] = []
    for line in log.read_text().splitlines():
        if RECORD_START.match(line) or not grouped:
            grouped.append([line])
        else:
            grouped[-1].append(line)
    return grouped


def errors(log_dir: str) -> list[str]:
    return [line for path in Path(log_dir).glob("*.log") for line in path.read_text().splitlines()
            if " ERROR " in line]


def test_delete_during_build(cloud_factory):
    embedded, member, admin = start(cloud_factory, "delete-during-build", "build=0.6:0.6")
    boot_global, delete_global = f"req-{uuid.uuid4()}", f"req-{uuid.uuid4()}"
    server_id, boot_local = boot(member, "race-ddb", boot_global)
    deleted = nova(member, "DELETE", f"/servers/{server_id}", delete_global)
    assert deleted.status_code == 204
    delete_local = deleted.headers["x-openstack-request-id"]

    # the wrong state: ERROR with a fault instead of gone
    server = server_in(member, server_id, "ERROR")
    assert server["fault"]["code"] == 500 and server["fault"]["message"] == "UnexpectedDeletingTaskStateError"
    host = nova(admin, "GET", f"/servers/{server_id}").json()["server"]["OS-EXT-SRV-ATTR:host"]
    (record,) = fired(embedded, admin, "delete-during-build")
    assert record["resource_id"] == server_id and record["log"] == f"nova-compute-{host}.log"
    assert {boot_global, boot_local, delete_global, delete_local} <= set(record["request_ids"])

    log = records(Path(embedded.log_dir) / record["log"])
    (spawn,) = [r for r in log if "Instance failed to spawn" in r[0]]
    assert f"[{boot_global} {boot_local} " in spawn[0] and f"[instance: {server_id}]" in spawn[0]
    assert " ERROR nova.compute.manager " in spawn[0]
    assert spawn[1].endswith("Traceback (most recent call last):")
    assert "nova.exception.UnexpectedDeletingTaskStateError: Conflict updating instance" in spawn[-2]
    assert all(" ERROR nova.compute.manager [instance: " in line for line in spawn[1:])
    assert any(f"[{delete_global} {delete_local} " in r[0] and " ERROR " in r[0] for r in log)

    # a second DELETE removes it, but its allocations stay in Placement (consumer = server id)
    assert nova(member, "DELETE", f"/servers/{server_id}").status_code == 204
    gone(member, server_id)
    leaked = admin.get(f"/allocations/{server_id}", endpoint_filter={"service_type": "placement"}).json()
    assert [a["resources"]["MEMORY_MB"] for a in leaked["allocations"].values()] == [64]

    disarm(embedded, admin, "delete-during-build")
    before = len(errors(embedded.log_dir))
    clean_id, _ = boot(member, "race-ddb-clean")
    assert nova(member, "DELETE", f"/servers/{clean_id}").status_code == 204
    gone(member, clean_id)
    assert len(errors(embedded.log_dir)) == before
    assert len(fired(embedded, admin, "delete-during-build")) == 1
    assert admin.get(f"/allocations/{clean_id}",
                     endpoint_filter={"service_type": "placement"}).json()["allocations"] == {}


def test_scheduler_capacity_race(cloud_factory):
    embedded, member, admin = start(cloud_factory, "scheduler-capacity-race", "build=1:1")
    first, first_local = boot(member, "race-sched-a")
    second, second_local = boot(member, "race-sched-b")  # accepted while the first is scheduling
    loser = server_in(member, first, "ERROR", "ACTIVE")
    winner = server_in(member, second, "ERROR", "ACTIVE")
    assert sorted([loser["status"], winner["status"]]) == ["ACTIVE", "ERROR"]
    failed = loser if loser["status"] == "ERROR" else winner
    failed_local = first_local if failed is loser else second_local
    assert failed["fault"]["code"] == 500
    assert failed["fault"]["message"].startswith("No valid host was found.")
    assert "details" not in failed["fault"]  # a member does not see a 500 fault's details
    assert nova(admin, "GET", f"/servers/{failed['id']}").json()["server"]["fault"]["details"]

    (record,) = fired(embedded, admin, "scheduler-capacity-race")
    assert record["resource_id"] == failed["id"] and record["log"] == "nova-conductor.log"
    assert {first_local, second_local} <= set(record["request_ids"])
    log = records(Path(embedded.log_dir) / "nova-conductor.log")
    (failure,) = [r for r in log if "Failed to schedule instances" in r[0]]
    assert f" {failed_local} " in failure[0] and " ERROR nova.conductor.manager " in failure[0]
    assert "nova.exception.NoValidHost: No valid host was found." in "\n".join(failure)
    # the local traceback ends with the remote one and two prefix-only lines, as recorded
    assert failure[-3].endswith("nova.exception.NoValidHost: No valid host was found. "
                                "There are not enough hosts available.")
    assert failure[-2].endswith(" ERROR nova.conductor.manager ") and failure[-1] == failure[-2]

    disarm(embedded, admin, "scheduler-capacity-race")
    before = len(errors(embedded.log_dir))
    third, _ = boot(member, "race-sched-c")
    fourth, _ = boot(member, "race-sched-d")
    assert server_in(member, third, "ERROR", "ACTIVE")["status"] == "ACTIVE"
    assert server_in(member, fourth, "ERROR", "ACTIVE")["status"] == "ACTIVE"
    assert len(errors(embedded.log_dir)) == before


def in_use_and_real(member) -> tuple[int, int]:
    project_id = member.get_project_id()
    detail = nova(member, "GET", f"/os-quota-sets/{project_id}/detail").json()["quota_set"]
    return detail["instances"]["in_use"], len(nova(member, "GET", "/servers").json()["servers"])


def test_quota_usage_drift(cloud_factory):
    embedded, member, admin = start(cloud_factory, "quota-usage-drift", "delete=0.6:0.6")
    victim, _ = boot(member, "race-quota-a")
    server_in(member, victim, "ACTIVE")
    delete_global = f"req-{uuid.uuid4()}"
    deleted = nova(member, "DELETE", f"/servers/{victim}", delete_global)
    delete_local = deleted.headers["x-openstack-request-id"]
    newcomer, boot_local = boot(member, "race-quota-b")  # lands while the delete is still pending
    gone(member, victim)
    in_use, real = in_use_and_real(member)
    assert (in_use, real) == (2, 1)  # the wrong state: one instance counted that does not exist
    (record,) = fired(embedded, admin, "quota-usage-drift")
    assert record["resource_id"] == victim
    assert {delete_global, delete_local, boot_local} <= set(record["request_ids"])
    log = records(Path(embedded.log_dir) / record["log"])
    (failure,) = [r for r in log if "Failed to commit reservations" in r[0]]
    assert f"[{delete_global} {delete_local} " in failure[0] and " ERROR nova.quota " in failure[0]
    assert failure[1].endswith("Traceback (most recent call last):")
    assert "oslo_db.exception.DBDeadlock" in failure[-2]

    disarm(embedded, admin, "quota-usage-drift")
    server_in(member, newcomer, "ACTIVE")
    nova(member, "DELETE", f"/servers/{newcomer}")
    another, _ = boot(member, "race-quota-c")
    gone(member, newcomer)
    in_use, real = in_use_and_real(member)
    assert in_use - real == 1  # the earlier drift stays; the clean sequence added none
    assert len(fired(embedded, admin, "quota-usage-drift")) == 1
    nova(member, "DELETE", f"/servers/{another}")


def volume_status(member, volume_id: str) -> dict:
    return member.get(f"/volumes/{volume_id}", endpoint_filter=VOLUME).json()["volume"]


def attach_then_delete(member, name: str, attach_global: str | None = None,
                       delete_global: str | None = None) -> tuple[str, str, str, str]:
    volume_id = member.post("/volumes", json={"volume": {"size": 1, "name": name}},
                            endpoint_filter=VOLUME).json()["volume"]["id"]
    wait_until(lambda: volume_status(member, volume_id)["status"] == "available", "volume available")
    server_id, _ = boot(member, name)
    server_in(member, server_id, "ACTIVE")
    attached = nova(member, "POST", f"/servers/{server_id}/os-volume_attachments", attach_global,
                    json={"volumeAttachment": {"volumeId": volume_id}})
    assert attached.status_code == 200, attached.text
    deleted = nova(member, "DELETE", f"/servers/{server_id}", delete_global)  # the attach is in flight
    assert deleted.status_code == 204
    gone(member, server_id)
    return (volume_id, server_id, attached.headers["x-openstack-request-id"],
            deleted.headers["x-openstack-request-id"])


def test_attach_during_delete(cloud_factory):
    embedded, member, admin = start(cloud_factory, "attach-during-delete", "volume=0.8:0.8",
                                    "delete=0.2:0.2")
    attach_global, delete_global = f"req-{uuid.uuid4()}", f"req-{uuid.uuid4()}"
    volume_id, server_id, attach_local, delete_local = attach_then_delete(
        member, "race-attach", attach_global, delete_global)

    # the wrong state: the volume ends up in-use, attached to a server that is gone
    volume = wait_until(lambda: (v := volume_status(member, volume_id))["status"] == "in-use" and v,
                        "volume in-use")
    assert [a["server_id"] for a in volume["attachments"]] == [server_id]
    (record,) = wait_until(lambda: fired(embedded, admin, "attach-during-delete"), "fault record")
    assert record["resource_id"] == server_id
    assert {attach_global, attach_local, delete_global, delete_local} <= set(record["request_ids"])
    log = records(Path(embedded.log_dir) / record["log"])
    (failure,) = [r for r in log if "Failed to attach" in r[0]]
    assert f"[{attach_global} {attach_local} " in failure[0] and f"[instance: {server_id}]" in failure[0]
    assert failure[-2].endswith(f"nova.exception.InstanceNotFound: Instance {server_id} could not be found.")
    assert any(f"[{delete_global} {delete_local} " in r[0] and " ERROR " in r[0] for r in log)

    disarm(embedded, admin, "attach-during-delete")
    before = len(errors(embedded.log_dir))
    clean_volume, _, _, _ = attach_then_delete(member, "race-attach-clean")
    volume = wait_until(lambda: (v := volume_status(member, clean_volume))["status"] == "available" and v,
                        "clean volume available", timeout=5)
    assert volume["attachments"] == []
    assert len(errors(embedded.log_dir)) == before
    assert len(fired(embedded, admin, "attach-during-delete")) == 1


PLACEMENT = {"service_type": "placement"}


def action(session, server_id: str, body: dict, global_id: str | None = None):
    return nova(session, "POST", f"/servers/{server_id}/action", global_id, json=body)


def active_server(member, name: str) -> str:
    server_id, _ = boot(member, name)
    server_in(member, server_id, "ACTIVE")
    return server_id


def two_actions_at_once(member, admin, server_id: str) -> list:
    """A reboot (member) and a stop (admin) sent at the same moment: (global id, response) each."""
    ids = [f"req-{uuid.uuid4()}", f"req-{uuid.uuid4()}"]
    member.get_token(), admin.get_token()  # no token round trip inside the race
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(action, member, server_id, {"reboot": {"type": "HARD"}}, ids[0])
        second = pool.submit(action, admin, server_id, {"os-stop": None}, ids[1])
        return [(ids[0], first.result()), (ids[1], second.result())]


def test_state_change_race(cloud_factory):
    embedded, member, admin = start(cloud_factory, "state-change-race", "action=1:1", scale=0.1)
    server_id = active_server(member, "race-scr")
    # the two requests may land more than the window apart on a busy machine: a few tries, bounded
    for _ in range(4):
        sent = two_actions_at_once(member, admin, server_id)
        statuses = sorted(response.status_code for _, response in sent)
        if statuses == [202, 500]:
            break
        if server_in(member, server_id, "ACTIVE", "SHUTOFF")["status"] == "SHUTOFF":
            assert action(member, server_id, {"os-start": None}).status_code == 202
            server_in(member, server_id, "ACTIVE")
    assert statuses == [202, 500], statuses
    (first_global, first), = [(g, r) for g, r in sent if r.status_code == 202]
    (second_global, second), = [(g, r) for g, r in sent if r.status_code == 500]
    fault = second.json()["computeFault"]
    assert fault["code"] == 500
    assert fault["message"] == ("Unexpected API Error. Please contact the administrator\n"
                                "<class 'nova.exception.UnexpectedTaskStateError'>")
    first_local = first.headers["x-openstack-request-id"]
    second_local = second.headers["x-openstack-request-id"]

    (record,) = fired(embedded, admin, "state-change-race")
    assert record["resource_id"] == server_id and record["log"] == "nova-api.log"
    assert {first_global, first_local, second_global, second_local} <= set(record["request_ids"])
    log = records(Path(embedded.log_dir) / "nova-api.log")
    (failure,) = [r for r in log if "Unexpected exception in API method" in r[0]]
    assert f"[{second_global} {second_local} " in failure[0] and " ERROR nova.api.openstack.wsgi " in failure[0]
    assert failure[1].endswith("Traceback (most recent call last):")
    assert failure[-2].endswith(f"nova.exception.UnexpectedTaskStateError: Conflict updating instance {server_id}. "
                                "Expected: {'task_state': [None]}. Actual: {'task_state': "
                                + ("'rebooting_hard'}" if first_global == sent[0][0] else "'powering-off'}"))
    assert any(f" {second_local} " in line and "status: 500" in line for r in log for line in r)
    # the first action goes on as if nothing happened
    server_in(member, server_id, "ACTIVE" if first_global == sent[0][0] else "SHUTOFF")

    disarm(embedded, admin, "state-change-race")
    if nova(member, "GET", f"/servers/{server_id}").json()["server"]["status"] == "SHUTOFF":
        assert action(member, server_id, {"os-start": None}).status_code == 202
        server_in(member, server_id, "ACTIVE")
    before = len(errors(embedded.log_dir))
    sent = two_actions_at_once(member, admin, server_id)
    assert sorted(response.status_code for _, response in sent) == [202, 409]
    assert len(errors(embedded.log_dir)) == before
    assert len(fired(embedded, admin, "state-change-race")) == 1


def reboot_then_delete(member, admin, name: str, reboot_global: str | None = None,
                       delete_global: str | None = None) -> tuple[str, str, str, str]:
    server_id = active_server(member, name)
    host = nova(admin, "GET", f"/servers/{server_id}").json()["server"]["OS-EXT-SRV-ATTR:host"]
    rebooted = action(member, server_id, {"reboot": {"type": "SOFT"}}, reboot_global)
    assert rebooted.status_code == 202
    deleted = nova(member, "DELETE", f"/servers/{server_id}", delete_global)  # the reboot is in flight
    assert deleted.status_code == 204
    gone(member, server_id)
    return server_id, host, rebooted.headers["x-openstack-request-id"], deleted.headers["x-openstack-request-id"]


def test_delete_preempts_action(cloud_factory):
    embedded, member, admin = start(cloud_factory, "delete-preempts-action", "action=0.8:0.8", scale=0.1)
    reboot_global, delete_global = f"req-{uuid.uuid4()}", f"req-{uuid.uuid4()}"
    server_id, host, reboot_local, delete_local = reboot_then_delete(
        member, admin, "race-dpa", reboot_global, delete_global)

    (record,) = wait_until(lambda: fired(embedded, admin, "delete-preempts-action"), "fault record")
    assert record["resource_id"] == server_id and record["log"] == f"nova-compute-{host}.log"
    assert {reboot_global, reboot_local, delete_global, delete_local} <= set(record["request_ids"])
    log = records(Path(embedded.log_dir) / record["log"])
    (failure,) = [r for r in log if "Exception during message handling" in r[0]]
    # the compute thread of the reboot, in the reboot's context, trips over the delete
    assert f"[{reboot_global} {reboot_local} " in failure[0] and " ERROR oslo_messaging.rpc.server " in failure[0]
    assert failure[1].endswith("Traceback (most recent call last):")
    assert any("in reboot_instance" in line for line in failure)
    assert failure[-2].endswith(f"nova.exception.UnexpectedDeletingTaskStateError: Conflict updating instance "
                                f"{server_id}. Expected: {{'task_state': ['rebooting']}}. "
                                "Actual: {'task_state': 'deleting'}")
    assert any(f"[{delete_global} {delete_local} " in r[0] and "Terminating instance" in r[0] for r in log)

    disarm(embedded, admin, "delete-preempts-action")
    before = len(errors(embedded.log_dir))
    reboot_then_delete(member, admin, "race-dpa-clean")
    time.sleep(0.2)  # the compute side of the delete has written its lines
    assert len(errors(embedded.log_dir)) == before
    assert len(fired(embedded, admin, "delete-preempts-action")) == 1


def allocations(admin, server_id: str) -> dict:
    return admin.get(f"/allocations/{server_id}", endpoint_filter=PLACEMENT).json()["allocations"]


def unshelve_then_delete(member, name: str, unshelve_global: str | None = None,
                         delete_global: str | None = None) -> tuple[str, str, str]:
    server_id = active_server(member, name)
    assert action(member, server_id, {"shelve": None}).status_code == 202
    server_in(member, server_id, "SHELVED_OFFLOADED")
    unshelved = action(member, server_id, {"unshelve": None}, unshelve_global)
    assert unshelved.status_code == 202
    deleted = nova(member, "DELETE", f"/servers/{server_id}", delete_global)  # the unshelve is in flight
    assert deleted.status_code == 204
    gone(member, server_id)
    return server_id, unshelved.headers["x-openstack-request-id"], deleted.headers["x-openstack-request-id"]


def test_unshelve_delete_allocations(cloud_factory):
    # delay scale 0.05: the periodic heal runs 3 s after the race
    embedded, member, admin = start(cloud_factory, "unshelve-delete-allocations", "action=0.5:0.5", scale=0.05)
    unshelve_global, delete_global = f"req-{uuid.uuid4()}", f"req-{uuid.uuid4()}"
    server_id, unshelve_local, delete_local = unshelve_then_delete(member, "race-uda", unshelve_global,
                                                                   delete_global)
    # the wrong state: the server is gone, Placement still holds its allocations (a consumer, no server)
    held = allocations(admin, server_id)
    assert [a["resources"] for a in held.values()] == [{"VCPU": 1, "MEMORY_MB": 64, "DISK_GB": 1}]
    (record,) = fired(embedded, admin, "unshelve-delete-allocations")
    assert record["resource_id"] == server_id and record["log"].startswith("nova-compute-")
    assert {unshelve_global, unshelve_local, delete_global, delete_local} <= set(record["request_ids"])
    log_path = Path(embedded.log_dir) / record["log"]
    (failure,) = [r for r in records(log_path) if "Instance failed to spawn" in r[0]]
    assert f"[{unshelve_global} {unshelve_local} " in failure[0] and f"[instance: {server_id}]" in failure[0]
    assert failure[-2].endswith(f"nova.exception.InstanceNotFound: Instance {server_id} could not be found.")

    # healed later by the periodic task, which says so in a WARNING without a request's context
    wait_until(lambda: allocations(admin, server_id) == {}, "allocations healed", timeout=20)
    (healed,) = [r for r in records(log_path) if "has been deleted (perhaps locally)" in r[0]]
    assert " WARNING nova.compute.resource_tracker [None req-" in healed[0] and " - - - - - -] " in healed[0]
    assert f"Instance {server_id} has been deleted" in healed[0]

    disarm(embedded, admin, "unshelve-delete-allocations")
    before = len(errors(embedded.log_dir))
    clean_id, _, _ = unshelve_then_delete(member, "race-uda-clean")
    assert allocations(admin, clean_id) == {}
    assert len(errors(embedded.log_dir)) == before
    assert len(fired(embedded, admin, "unshelve-delete-allocations")) == 1


def burst(member, name: str, count: int = 3) -> tuple[str, list[tuple[str, str]]]:
    """An anti-affinity group and `count` boots into it sent at once: (group id, [(server id, local id)])."""
    group = nova(member, "POST", "/os-server-groups", json={"server_group": {
        "name": name, "policy": "anti-affinity"}}).json()["server_group"]
    images = member.get("/v2/images", endpoint_filter={"service_type": "image"}).json()["images"]

    def one(number: int) -> tuple[str, str]:
        response = nova(member, "POST", "/servers", json={
            "server": {"name": f"{name}-{number}", "imageRef": images[0]["id"], "flavorRef": "42",
                       "networks": "none"}, "os:scheduler_hints": {"group": group["id"]}})
        assert response.status_code == 202, response.text
        return response.json()["server"]["id"], response.headers["x-openstack-request-id"]
    with ThreadPoolExecutor(count) as pool:
        booted = list(pool.map(one, range(count)))
    return group["id"], booted


def hosts_of(member, admin, booted) -> list[str]:
    for server_id, _ in booted:
        server_in(member, server_id, "ACTIVE")
    return [nova(admin, "GET", f"/servers/{server_id}").json()["server"]["OS-EXT-SRV-ATTR:host"]
            for server_id, _ in booted]


def test_group_policy_burst(cloud_factory):
    embedded, member, admin = start(cloud_factory, "group-policy-burst", "build=0.4:0.4", scale=0.1)
    before = len(errors(embedded.log_dir))
    group_id, booted = burst(member, "race-gpb")
    hosts = hosts_of(member, admin, booted)
    # the wrong state: every boot succeeded, yet anti-affinity members share a host, and no error says so
    assert len(set(hosts)) < len(hosts), hosts
    assert len(errors(embedded.log_dir)) == before
    planted = fired(embedded, admin, "group-policy-burst")
    assert planted
    by_id = dict(booted)
    for record in planted:
        assert record["resource_id"] in by_id and record["log"] == "nova-scheduler.log"
        assert by_id[record["resource_id"]] in record["request_ids"]
        assert group_id in record["detail"]
    members = nova(member, "GET", f"/os-server-groups/{group_id}").json()["server_group"]["members"]
    assert sorted(members) == sorted(by_id)

    disarm(embedded, admin, "group-policy-burst")
    _, clean = burst(member, "race-gpb-clean")
    clean_hosts = hosts_of(member, admin, clean)
    assert len(set(clean_hosts)) == len(clean_hosts) == 3
    assert len(fired(embedded, admin, "group-policy-burst")) == len(planted)
