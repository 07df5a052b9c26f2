"""Nova's two quota checks in the embedded cloud, over real HTTP.

nova-api's check is not atomic: boots racing it all pass (202). The conductor re-checks once
the instance exists (`[quota] recheck_quota`) and puts the excess in ERROR with Nova's 413
TooManyInstances fault. A boot over the quota with no race is refused at the API (403). The
planted `quota-recheck-skipped` skips the re-check: the excess is built.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from test_races import disarm, fired, gone, nova, records, server_in, start

PLACEMENT = {"service_type": "placement"}
OVER_ONE = "Quota exceeded for instances: Requested 1, but already used 1 of 1 instances"


def image_id(session) -> str:
    return session.get("/v2/images", endpoint_filter={"service_type": "image"}).json()["images"][0]["id"]


def race(member, image: str, name: str, count: int) -> list[tuple[str, str]]:
    """`count` boots at once: (server id, local request id) of the accepted ones."""
    member.get_token()  # authenticated before the race, so the boots leave together

    def boot(number: int):
        return nova(member, "POST", "/servers", json={"server": {
            "name": f"{name}-{number}", "imageRef": image, "flavorRef": "42", "networks": "none"}})
    with ThreadPoolExecutor(count) as pool:
        responses = list(pool.map(boot, range(count)))
    assert all(r.status_code in (202, 403) for r in responses), [r.text for r in responses]
    return [(r.json()["server"]["id"], r.headers["x-openstack-request-id"])
            for r in responses if r.status_code == 202]


def limit_instances(admin, project_id: str, limit: int) -> None:
    updated = nova(admin, "PUT", f"/os-quota-sets/{project_id}", json={"quota_set": {"instances": limit}})
    assert updated.status_code == 200, updated.text


def in_use(member) -> int:
    detail = nova(member, "GET", f"/os-quota-sets/{member.get_project_id()}/detail").json()["quota_set"]
    return detail["instances"]["in_use"]


def settled(member, admin, accepted) -> dict[str, dict]:
    """Each accepted boot once ACTIVE or ERROR, seen by the admin (host shown)."""
    for server_id, _ in accepted:
        server_in(member, server_id, "ACTIVE", "ERROR")
    return {server_id: nova(admin, "GET", f"/servers/{server_id}").json()["server"] for server_id, _ in accepted}


def allocations(admin, server_id: str) -> dict:
    return admin.get(f"/allocations/{server_id}", endpoint_filter=PLACEMENT).json()["allocations"]


def delete_all(member, server_ids) -> None:
    for server_id in server_ids:
        nova(member, "DELETE", f"/servers/{server_id}")
    for server_id in server_ids:
        gone(member, server_id)


def test_racing_boots_pass_the_api_and_the_conductor_puts_the_excess_in_error(cloud_factory):
    embedded = cloud_factory(faults="none", delay_scale=0.1, seed=3)
    member, admin = embedded.session(), embedded.session(admin=True)
    image = image_id(member)
    limit_instances(admin, member.get_project_id(), 1)
    accepted = race(member, image, "quota-race", 3)
    assert len(accepted) > 1  # more than the limit got past nova-api
    servers = settled(member, admin, accepted)
    active = [s for s in servers.values() if s["status"] == "ACTIVE"]
    refused = [s for s in servers.values() if s["status"] == "ERROR"]
    assert len(active) == 1 and len(refused) == len(accepted) - 1
    ids = dict(accepted)
    conductor = records(Path(embedded.log_dir) / "nova-conductor.log")
    for server in refused:
        assert server["fault"]["code"] == 413 and server["fault"]["message"] == OVER_ONE
        assert server["fault"]["details"] == "" and server["OS-EXT-SRV-ATTR:host"] is None
        # never built: the conductor records no create action; Placement keeps its claim until the delete
        assert nova(member, "GET", f"/servers/{server['id']}/os-instance-actions").json()["instanceActions"] == []
        assert allocations(admin, server["id"])
        local = ids[server["id"]]
        mine = [r for r in conductor if f" {local} " in r[0]]
        assert [r[0].split("] ", 1)[1] for r in mine] == [
            f"Failed to compute_task_build_instances: {OVER_ONE}: nova.exception.TooManyInstances: {OVER_ONE}",
            f"[instance: {server['id']}] Setting instance to ERROR state.: "
            f"nova.exception.TooManyInstances: {OVER_ONE}",
            f"Exception during message handling: nova.exception.TooManyInstances: {OVER_ONE}"]
        assert [r[0].split()[3:5] for r in mine] == [["WARNING", "nova.scheduler.utils"]] * 2 + [
            ["ERROR", "oslo_messaging.rpc.server"]]
        assert mine[2][1].endswith("Traceback (most recent call last):")
        assert mine[2][-2].endswith(f"nova.exception.TooManyInstances: {OVER_ONE}")
    # the ERROR instances count until they are deleted, then usage is back at the limit
    assert in_use(member) == len(accepted)
    delete_all(member, [s["id"] for s in refused])
    assert in_use(member) == 1
    assert all(allocations(admin, s["id"]) == {} for s in refused)
    # no race: a boot over the quota is refused by nova-api itself
    lone = nova(member, "POST", "/servers", json={"server": {
        "name": "quota-lone", "imageRef": image, "flavorRef": "42", "networks": "none"}})
    assert lone.status_code == 403 and lone.json()["forbidden"]["message"] == OVER_ONE
    delete_all(member, [s["id"] for s in active])
    assert in_use(member) == 0


def test_quota_recheck_skipped_builds_the_excess(cloud_factory):
    embedded, member, admin = start(cloud_factory, "quota-recheck-skipped", scale=0.1)
    image = image_id(member)
    limit_instances(admin, member.get_project_id(), 1)
    accepted = race(member, image, "quota-skip", 3)
    assert len(accepted) > 1
    servers = settled(member, admin, accepted)
    assert [s["status"] for s in servers.values()] == ["ACTIVE"] * len(accepted)  # the wrong state
    assert in_use(member) == len(accepted)
    planted = fired(embedded, admin, "quota-recheck-skipped")
    # every boot beyond the limit, named with its own request id
    assert len(planted) == len(accepted) - 1
    ids = dict(accepted)
    for record in planted:
        assert ids[record["resource_id"]] in record["request_ids"]

    disarm(embedded, admin, "quota-recheck-skipped")
    delete_all(member, list(ids))
    again = race(member, image, "quota-clean", 3)
    statuses = sorted(s["status"] for s in settled(member, admin, again).values())
    assert statuses == ["ACTIVE"] + ["ERROR"] * (len(again) - 1)
    assert len(fired(embedded, admin, "quota-recheck-skipped")) == len(planted)
    delete_all(member, [server_id for server_id, _ in again])
