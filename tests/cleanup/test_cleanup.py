"""`novastress-cleanup` against a real embedded cloud: scope, kinds, order, retries, failures."""
from __future__ import annotations

from cleanup_helpers import CLEANUP, Api, clean_env, isolated, leftovers, run_cleanup
from locust_runs import chaos

FAST = dict(faults="none", delay_scale=0.1, seed=7)


def test_lists_by_default_then_deletes_one_run_then_every_run(cloud_factory):
    cloud = cloud_factory(**FAST)
    member = Api(cloud, cloud.session())
    for run in ("r1", "r2"):
        member.server(f"ns-{run}-a1-1-server", wait=False)
        member.floating_ip(f"ns-{run}-a1-2-floating-ip")
        member.keypair(f"ns-{run}-a1-3-keypair")
        member.security_group(f"ns-{run}-a1-4-secgroup")
        member.volume_(f"ns-{run}-a1-5-volume")
        member.server_group(f"ns-{run}-a1-6-server-group")
    # not ours: no prefix, another prefix that starts alike, the prefix not at the start
    foreign = ["web-1", "nsx-r1-a1-1-server", "ns_r1-server", "x-ns-r1-a1-1-server"]
    for name in foreign:
        member.server(name, wait=False)
    member.floating_ip("")
    member.floating_ip("production gateway")
    member.keypair("ops-key")
    member.security_group("web")
    member.volume_("database")
    member.server_group("web-spread")

    listed = run_cleanup(cloud)
    assert listed.returncode == 0, listed.output
    assert listed.row("servers") == (2, 0, 0)
    assert listed.row("floating IPs") == (2, 0, 0)
    assert listed.row("volumes") == (2, 0, 0)
    assert listed.row("server groups") == (2, 0, 0)
    assert "add --yes to delete these 12" in listed.stdout
    assert "would delete server ns-r1-a1-1-server" in listed.stdout
    assert not any(name in listed.stdout for name in foreign[1:])
    # listing deleted nothing
    assert sorted(leftovers(cloud, "ns-r1-")["servers"]) == ["ns-r1-a1-1-server"]

    one_run = run_cleanup(cloud, "--run-id", "r1", "--yes")
    assert one_run.returncode == 0, one_run.output
    for kind in ("servers", "server groups", "floating IPs", "keypairs", "security groups", "volumes"):
        assert one_run.row(kind) == (1, 1, 0), kind
    assert leftovers(cloud, "ns-r1-") == {}
    assert len(leftovers(cloud, "ns-r2-")) == 6          # the other run is untouched

    every_run = run_cleanup(cloud, "--yes")
    assert every_run.returncode == 0, every_run.output
    assert leftovers(cloud, "ns-") == {}
    # what the tool did not create is all still there
    names = {s["name"] for s in member.get(f"{member.compute}/servers")["servers"]}
    assert set(foreign) <= names
    descriptions = {f["description"] for f in member.get(f"{member.network}/floatingips")["floatingips"]}
    assert {"", "production gateway"} <= descriptions
    assert "ops-key" in {k["keypair"]["name"] for k in member.get(f"{member.compute}/os-keypairs")["keypairs"]}
    assert "web" in {g["name"] for g in member.get(f"{member.network}/security-groups")["security_groups"]}
    assert "database" in {v["name"] for v in member.get(f"{member.volume}/volumes")["volumes"]}
    assert "web-spread" in {g["name"] for g in member.get(f"{member.compute}/os-server-groups")["server_groups"]}


def test_attached_volumes_and_snapshots_go_in_dependency_order(cloud_factory):
    cloud = cloud_factory(**FAST)
    member = Api(cloud, cloud.session())
    server = member.server("ns-r1-a1-1-server")
    volume = member.volume_("ns-r1-a1-2-volume")
    member.snapshot(volume["id"], "ns-r1-a1-3-snapshot")
    member.attach(server["id"], volume["id"])
    result = run_cleanup(cloud, "--yes")
    assert result.returncode == 0, result.output
    assert result.row("servers") == (1, 1, 0)
    assert result.row("volume snapshots") == (1, 1, 0)
    assert result.row("volumes") == (1, 1, 0)
    assert leftovers(cloud, "ns-") == {}


def test_a_volume_reserved_for_a_gone_server_is_reset_as_admin_and_deleted(cloud_factory):
    # what an attach racing its server's delete leaves in a real Cinder: the volume reserved for a
    # server that no longer exists; Cinder's volume shows no attachment, its attachments API does
    cloud = cloud_factory(**FAST)
    member = Api(cloud, cloud.session())
    volume = member.volume_("ns-r1-a1-1-volume")
    gone_server = "0d6f2b1e-0000-4000-8000-00000000dead"
    response = member.session.post(f"{member.volume}/attachments", headers={"OpenStack-API-Version": "volume 3.27"},
                                   json={"attachment": {"volume_uuid": volume["id"], "instance_uuid": gone_server}})
    assert response.status_code == 200, response.text
    as_member = run_cleanup(cloud, "--yes", "--retries", "1")
    assert as_member.returncode == 1, as_member.output
    assert f"on server {gone_server}" in as_member.stdout and "an admin must reset it" in as_member.stdout, \
        as_member.output
    result = run_cleanup(cloud, "--yes", "--all-projects", admin=True)
    assert result.returncode == 0, result.output
    assert result.row("volume attachments") == (1, 1, 0)
    assert result.row("volumes") == (1, 1, 0)
    assert leftovers(cloud, "ns-") == {}


def test_a_foreign_snapshot_keeps_our_volume_and_the_exit_code_says_so(cloud_factory):
    cloud = cloud_factory(**FAST)
    member = Api(cloud, cloud.session())
    volume = member.volume_("ns-r1-a1-1-volume")
    snapshot = member.snapshot(volume["id"], "backup-of-something")
    result = run_cleanup(cloud, "--yes", "--retries", "1")
    assert result.returncode == 1, result.output
    assert result.row("volumes") == (1, 0, 1)
    assert f"FAILED volume ns-r1-a1-1-volume ({volume['id']})" in result.stdout
    assert snapshot["id"] in result.stdout and "not ours to delete" in result.stdout
    assert "could not be deleted" in result.stderr
    assert member.get(f"{member.volume}/snapshots/{snapshot['id']}")["snapshot"]["status"] == "available"


def test_all_projects_cleans_isolated_projects_and_users_as_admin(cloud_factory):
    cloud = cloud_factory(**FAST)
    admin = Api(cloud, cloud.session(admin=True))
    tenant = isolated(cloud, admin, "ns-r3-a1-1")
    tenant.server("ns-r3-a1-2-server", wait=False)
    tenant.keypair("ns-r3-a1-3-keypair")
    tenant.floating_ip("ns-r3-a1-4-floating-ip")
    tenant.volume_("ns-r3-a1-5-volume")
    tenant.server("their-own-server", wait=False)   # in an isolated project, but not named by us
    admin.server("admin-server", wait=False)

    # the member sees nothing of another project
    as_member = run_cleanup(cloud, "--run-id", "r3")
    assert as_member.returncode == 0, as_member.output
    assert as_member.row("servers") == (0, 0, 0)
    assert "isolated projects are cleaned with --all-projects" in as_member.stdout

    as_admin = run_cleanup(cloud, "--run-id", "r3", "--all-projects", "--yes", admin=True)
    assert as_admin.returncode == 0, as_admin.output
    assert as_admin.row("servers") == (1, 1, 0)
    assert as_admin.row("keypairs") == (1, 1, 0)
    assert as_admin.row("projects") == (1, 1, 0)
    assert as_admin.row("users") == (1, 1, 0)
    # the isolated project's "default" security group goes with it
    assert as_admin.row("security groups") == (1, 1, 0)
    assert leftovers(cloud, "ns-r3-") == {}
    servers = {s["name"] for s in admin.get(f"{admin.compute}/servers/detail", all_tenants="1")["servers"]}
    assert {"their-own-server", "admin-server"} <= servers


def test_retries_through_5xx_and_resets(cloud_factory):
    cloud = cloud_factory(**FAST)
    member = Api(cloud, cloud.session())
    for n in range(3):
        member.server(f"ns-r1-a{n}-1-server", wait=False)
        member.floating_ip(f"ns-r1-a{n}-2-floating-ip")
    chaos(cloud, service="compute", method="DELETE", kind="status", status=503, count=3)
    chaos(cloud, service="networking", method="DELETE", kind="reset", count=2)
    chaos(cloud, service="compute", method="GET", path="/servers/detail", kind="status", status=500, count=1)
    result = run_cleanup(cloud, "--yes")
    assert result.returncode == 0, result.output
    assert result.row("servers") == (3, 3, 0)
    assert result.row("floating IPs") == (3, 3, 0)
    assert leftovers(cloud, "ns-") == {}


def test_persistent_failure_is_reported_per_resource_with_a_nonzero_exit(cloud_factory):
    cloud = cloud_factory(**FAST)
    member = Api(cloud, cloud.session())
    member.keypair("ns-r1-a1-1-keypair")
    member.security_group("ns-r1-a1-2-secgroup")
    chaos(cloud, service="compute", method="DELETE", path="/os-keypairs/", kind="status", status=503)
    result = run_cleanup(cloud, "--yes", "--retries", "2")
    assert result.returncode == 1, result.output
    assert result.row("keypairs") == (1, 0, 1)
    assert result.row("security groups") == (1, 1, 0)    # one failure does not stop the rest
    failure = next(line for line in result.stdout.splitlines() if line.strip().startswith("FAILED"))
    assert "keypair ns-r1-a1-1-keypair" in failure and "503" in failure and "gave up after 3 attempts" in failure
    assert leftovers(cloud, "ns-") == {"keypairs": ["ns-r1-a1-1-keypair"]}


def test_bad_input_is_one_line_and_exit_2(cloud_factory, tmp_path):
    import subprocess
    cloud = cloud_factory(**FAST)
    cases = [
        ([CLEANUP, "--no-such-option"], "unrecognized arguments: --no-such-option"),
        ([CLEANUP], "no cloud configured"),
        ([CLEANUP, f"--os-auth-url={cloud.auth_url}", "--os-username=demo", "--os-password=wrong-pw-123",
          "--os-project-name=demo"], "authentication failed for demo/demo"),
        ([CLEANUP, "--prefix", "ns;rm", f"--os-auth-url={cloud.auth_url}"], "--prefix 'ns;rm'"),
        ([CLEANUP, "--os-cloud", "nowhere"], "cloud 'nowhere'"),
    ]
    for argv, expected in cases:
        completed = subprocess.run(argv, cwd=tmp_path, env=clean_env(HOME=str(tmp_path)),
                                   capture_output=True, text=True, timeout=60)
        lines = completed.stderr.strip().splitlines()
        assert completed.returncode == 2, (argv, completed.stderr)
        assert len(lines) == 1 and expected in lines[0], (argv, completed.stderr)
        assert "wrong-pw-123" not in completed.stdout + completed.stderr
        assert "Traceback" not in completed.stderr


def test_python_dash_m_is_the_same_tool(cloud_factory):
    import subprocess
    import sys
    cloud = cloud_factory(**FAST)
    Api(cloud, cloud.session()).keypair("ns-r9-a1-1-keypair")
    from cleanup_helpers import ROOT, credentials_args
    completed = subprocess.run([sys.executable, "-m", "novastress_locust.cleanup", *credentials_args(cloud),
                                "--yes"], cwd=ROOT, env=clean_env(), capture_output=True, text=True,
                               timeout=60)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "keypairs" in completed.stdout and leftovers(cloud, "ns-") == {}


def test_snapshot_images_go_after_their_servers_and_foreign_images_stay(cloud_factory):
    cloud = cloud_factory(**FAST)
    member = Api(cloud, cloud.session())
    admin = Api(cloud, cloud.session(admin=True))
    server = member.server("ns-r1-a1-1-server")
    ours = member.server_image(server["id"], "ns-r1-a1-2-image")
    other_run = member.server_image(server["id"], "ns-r2-a1-2-image")
    golden = member.server_image(server["id"], "golden-snapshot")       # the project's, not ours
    # named like ours but public (an admin's): others boot from it, it is never ours
    public = admin.post(f"{admin.image}/images", {"name": "ns-r1-a1-3-image", "visibility": "public",
                                                  "disk_format": "qcow2", "container_format": "bare"})["id"]

    listed = run_cleanup(cloud, "--run-id", "r1")
    assert listed.returncode == 0, listed.output
    assert listed.row("images") == (1, 0, 0)
    assert "would delete image ns-r1-a1-2-image" in listed.stdout
    assert admin.get(f"{admin.image}/images/{ours}")["status"] == "active"   # listing deleted nothing

    result = run_cleanup(cloud, "--run-id", "r1", "--yes")
    assert result.returncode == 0, result.output
    assert result.row("servers") == (1, 1, 0)
    assert result.row("images") == (1, 1, 0)
    # servers first: a server deleted mid-snapshot takes its partial image with it
    lines = result.stdout.splitlines()
    assert max(n for n, line in enumerate(lines) if line.startswith("deleting server ")) < \
        min(n for n, line in enumerate(lines) if line.startswith("deleting image "))
    assert leftovers(cloud, "ns-r1-") == {"images": ["ns-r1-a1-3-image"]}
    remaining = {i["id"] for i in admin.get(f"{admin.image}/images", limit="1000")["images"]}
    assert {other_run, golden, public} <= remaining and ours not in remaining
