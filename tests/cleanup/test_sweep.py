"""The end-of-run sweep of a local `locust` run: every kind named `<prefix>-<run id>-` goes, in
dependency order; the same prefix with another run id, or no prefix, stays."""
from __future__ import annotations

import json

from cleanup_helpers import COMPUTE_HEADERS, Api, isolated, leftovers
from locust_runs import FAST, LocustRun, cli_credentials, run_locust

CLOUD = dict(faults="none", delay_scale=0.1, seed=9)


def admin_options(cloud) -> list[str]:
    admin = cloud.credentials(admin=True)
    return [f"--os-admin-username={admin['username']}", f"--os-admin-password={admin['password']}",
            f"--os-admin-project-name={admin['project_name']}"]


LEFT = ("1-server", "2-volume", "3-snapshot", "4-image", "5-floating-ip", "6-keypair", "7-secgroup",
        "8-server-group")


def leave(member: Api, run: str) -> list[str]:
    """What a killed user of run `run` would leave in the member's project: every kind, tied up
    (a volume attached to the server and snapshotted, an image of the server)."""
    names = [f"ns-{run}-zz1-{suffix}" for suffix in LEFT]
    server = member.server(names[0])
    volume = member.volume_(names[1])
    member.snapshot(volume["id"], names[2])
    member.attach(server["id"], volume["id"])
    member.server_image(server["id"], names[3])
    member.floating_ip(names[4])
    member.keypair(names[5])
    member.security_group(names[6])
    member.server_group(names[7])
    return names


def leave_isolated(cloud, admin: Api, run: str) -> None:
    """An isolated project and user of run `run` (use_isolated_tenants), with resources in it."""
    tenant = isolated(cloud, admin, f"ns-{run}-zz2-1")
    # its first call to Neutron makes the project's "default" security group, as a real Neutron does
    tenant.get(f"{tenant.network}/security-groups")
    tenant.server(f"ns-{run}-zz2-2-server", wait=False)
    tenant.volume_(f"ns-{run}-zz2-3-volume")
    tenant.keypair(f"ns-{run}-zz2-4-keypair")
    tenant.server_group(f"ns-{run}-zz2-5-server-group")


def run(cloud, tmp_path, run_id: str, *extra: str) -> tuple[LocustRun, dict]:
    summary_json = tmp_path / f"{run_id}.json"
    result = run_locust([*FAST, *cli_credentials(cloud), "--run-id", run_id, "-u", "1", "--max-runs", "1",
                         "-t", "60s", "--summary-json", str(summary_json), *extra], timeout=150)
    assert summary_json.exists(), result.output[-3000:]
    return result, json.loads(summary_json.read_text())


def test_with_admin_every_kind_of_the_run_goes_and_another_runs_stay(cloud_factory, tmp_path):
    cloud = cloud_factory(**CLOUD)
    member = Api(cloud, cloud.session())
    admin = Api(cloud, cloud.session(admin=True))
    ours = leave(member, "swp1")
    leave_isolated(cloud, admin, "swp1")
    leave(member, "other")
    leave_isolated(cloud, admin, "other")
    # not this run's: the run id as a prefix of another, no run id, no prefix
    member.server("ns-swp1x-zz1-1-server", wait=False)
    member.volume_("ns-handmade")
    member.keypair("web-key")
    before_other = leftovers(cloud, "ns-other-")

    result, document = run(cloud, tmp_path, "swp1", *admin_options(cloud))
    assert result.returncode == 0, result.output[-3000:]
    assert document["leaks"] == [] and "LEAKED" not in result.stdout

    assert leftovers(cloud, "ns-swp1-") == {}
    swept = set(document["swept"])
    assert set(ours) <= swept, swept
    assert {"ns-swp1-zz2-1-project", "ns-swp1-zz2-1-user", "ns-swp1-zz2-2-server", "ns-swp1-zz2-3-volume",
            "ns-swp1-zz2-4-keypair", "ns-swp1-zz2-5-server-group"} <= swept, swept
    # the isolated project's own "default" security group went with the project
    assert any(label.startswith("security group default of project") for label in swept), swept

    # another run of the same prefix, in the member's project and in its isolated project: untouched
    assert leftovers(cloud, "ns-other-") == before_other
    assert set(before_other) == {"servers", "server groups", "volumes", "snapshots", "images", "floating IPs",
                                 "keypairs", "security groups", "projects", "users"}
    servers = {s["name"] for s in member.get(f"{member.compute}/servers")["servers"]}
    assert "ns-swp1x-zz1-1-server" in servers
    assert "ns-handmade" in {v["name"] for v in member.get(f"{member.volume}/volumes")["volumes"]}
    assert "web-key" in {k["keypair"]["name"] for k in member.get(f"{member.compute}/os-keypairs")["keypairs"]}


def test_without_admin_the_members_project_only(cloud_factory, tmp_path):
    cloud = cloud_factory(**CLOUD)
    member = Api(cloud, cloud.session())
    admin = Api(cloud, cloud.session(admin=True))
    leave(member, "swp2")
    leave_isolated(cloud, admin, "swp2")
    leave(member, "other")

    result, document = run(cloud, tmp_path, "swp2")
    assert result.returncode == 0, result.output[-3000:]
    assert document["leaks"] == []
    # the member's project is clean; the isolated project is out of the member's sight
    assert leftovers(cloud, "ns-swp2-zz1-") == {}
    assert set(leftovers(cloud, "ns-swp2-zz2-")) == {"servers", "server groups", "volumes", "projects", "users"}
    assert len(leftovers(cloud, "ns-other-")) == 8


def test_a_leak_the_cloud_finished_deleting_after_all_is_no_leak(cloud_factory):
    """Nova can answer 500 to a DELETE that raced a build and delete the server anyway: before a
    user's leak is reported it is looked up by id, in an isolated project too (admin)."""
    from novastress_locust.cleanup import Settings, connect_clouds, gone_after_all
    from novastress_locust.credentials import CloudTarget

    cloud = cloud_factory(**CLOUD)
    member = Api(cloud, cloud.session())
    admin = Api(cloud, cloud.session(admin=True))
    kept = member.server("ns-gone1-zz1-kept")
    deleted = member.server("ns-gone1-zz1-deleted")
    member.session.delete(f"{member.compute}/servers/{deleted['id']}", headers=COMPUTE_HEADERS)
    member.wait(lambda: member.session.get(f"{member.compute}/servers/{deleted['id']}", raise_exc=False,
                                           headers=COMPUTE_HEADERS).status_code == 404)
    tenant = isolated(cloud, admin, "ns-gone1-zz2-1")
    theirs = tenant.server("ns-gone1-zz2-2-server", wait=False)
    volume = member.volume_("ns-gone1-zz1-volume")
    claims = [("server", kept["id"]), ("server", deleted["id"]), ("server", theirs["id"]),
              ("volume", volume["id"]), ("floating_ip", "00000000-0000-4000-8000-000000000000"),
              ("resources", "ns-gone1-*")]
    settings = Settings(timeout=60)
    member_target = CloudTarget("password", dict(cloud.credentials()), "test")
    admin_target = CloudTarget("password", dict(cloud.credentials(admin=True)), "test")
    gone = gone_after_all(connect_clouds(member_target, admin_target, settings), claims)
    assert gone == {deleted["id"], "00000000-0000-4000-8000-000000000000"}
    # admin credentials that do not work: the member cannot see the isolated project, and its
    # 404 proves nothing, so every claim stands
    wrong = CloudTarget("password", {**cloud.credentials(admin=True), "password": "not-it"}, "test")
    assert gone_after_all(connect_clouds(member_target, wrong, settings), claims) == set()
    # no admin credentials at all: the run had no isolated projects, the member's 404 is enough
    assert deleted["id"] in gone_after_all(connect_clouds(member_target, None, settings), claims)
