"""A real Nova with Cinder 29 (`novastress-realnova up --with-cinder`): the volume actions run
instead of being skipped, the storm attaches and detaches volumes, nothing is left, and a shape
without Cinder takes it away again (the modules after this one expect a cloud without it)."""
from __future__ import annotations

import re
import uuid

import pytest
from locust.argument_parser import LocustArgumentParser
from locust.env import Environment
from locust.event import Events

from cleanup_helpers import check_every_kind
from novastress_locust import options as novastress_options
from novastress_locust.cleanup import Settings, connect
from novastress_locust.client import OpenStackClient
from novastress_locust.realnova import Shape
from novastress_locust.state import run_state
from novastress_locust.user import NovaUser
from realnova_stack import COMPUTE, VOLUME, realnova_command, tools_own_failures
from waiting import wait_until

SHAPE = Shape(flavors=1, compute_hosts=1, cinder=True)
CINDER_DAEMONS = ("cinder-api", "cinder-scheduler", "cinder-volume")


def status_rows() -> dict[str, str]:
    """novastress-realnova status: daemon -> state."""
    completed = realnova_command("status", timeout=60)
    return {fields[0]: " ".join(fields[1:-2]) for fields in
            (line.split() for line in completed.stdout.splitlines()) if fields}


def test_cinder_runs_and_is_in_the_catalog(realnova):
    rows = status_rows()
    assert all(rows.get(name) == "running" for name in CINDER_DAEMONS), rows
    volumes = realnova.session().get("/volumes", endpoint_filter=VOLUME)
    assert volumes.status_code == 200 and volumes.json()["volumes"] == []
    for name in CINDER_DAEMONS:
        assert (realnova.log_dir / f"{name}.log").exists(), name


def test_volume_create_delete_scenario_runs_and_leaves_nothing(realnova):
    run = realnova.locust("locustfiles/scenario.py", "--scenario=locustfiles/etc/volume-create-delete-test.json",
                          *realnova.admin_options(), "-t", "15s")
    assert "skipping" not in run.output, run.output[-4000:]
    assert "Traceback" not in run.output, run.output[-4000:]
    assert tools_own_failures(run) == [], run.output[-4000:]
    assert "LEAKED" not in run.output, run.output[-4000:]
    runs, failed = run.totals()
    assert runs > 0 and failed == 0, run.output[-4000:]
    assert run.stats_row("POST", "volume POST /volumes") is not None, run.output[-4000:]
    assert realnova.leftovers(run.run_id) == {}


def test_storm_attaches_volumes_and_every_failure_is_the_clouds(realnova):
    run = realnova.locust("locustfiles/storm.py", *realnova.admin_options(), "-t", "30s", "-u", "3",
                          "--storm-actions", "attach_volume,soft_reboot", "--quota-step", "0",
                          "--snapshot-timeout", "5", "--log-local",
                          "--target-logfiles", f"{realnova.log_dir}/*.log", "--log-discovery", "none",
                          timeout=420)
    assert not re.search(r"skipping storm actions? [^\n]*\battach_volume\b", run.output), run.output[-4000:]
    assert not re.search(r"^Traceback \(most recent call last\)", run.output, re.M), run.output[-6000:]
    assert tools_own_failures(run) == [], run.output[-4000:]
    assert "NOT CHECKED" not in run.output, run.output[-4000:]
    assert run.stats_row("POST", "compute POST /servers/{id}/os-volume_attachments (storm)") is not None, \
        run.output[-4000:]
    # a server Nova itself would not delete (a real race) is the cloud's finding; only such may be LEAKED
    undeletable = set(re.findall(r"INVARIANT server-not-deleted: InvariantViolation\('([0-9a-f-]{36})", run.output))
    leaked = set(re.findall(r"^LEAKED server \S+ \(([0-9a-f-]{36})\)", run.stdout, re.M))
    assert leaked <= undeletable and "LEAKED" not in re.sub(r"^LEAKED server .*$", "", run.stdout, flags=re.M), \
        run.output[-4000:]
    realnova.force_delete_servers(run.run_id)
    assert realnova.leftovers(run.run_id) == {}
    assert realnova.project_usage("demo") == {}


def _one_of_each(realnova, prefix: str) -> dict[str, tuple[str, str]]:
    """kind -> (id, name) of one resource of every kind this cloud can make (no external
    network: no floating IP), all the admin's, made with plain keystoneauth calls."""
    admin = realnova.session(admin=True)
    compute = {"endpoint_filter": COMPUTE, "headers": {"OpenStack-API-Version": "compute 2.45"}}
    image = {"endpoint_filter": {"service_type": "image"}}
    identity = {"endpoint_filter": {"service_type": "identity", "interface": "public"}}
    network = {"endpoint_filter": {"service_type": "network"}}
    made: dict[str, tuple[str, str]] = {}
    image_id = admin.get("/v2/images", **image).json()["images"][0]["id"]
    flavor_id = admin.get("/flavors", **compute).json()["flavors"][0]["id"]
    server = admin.post("/servers", json={"server": {"name": f"{prefix}-server", "imageRef": image_id,
                                                     "flavorRef": flavor_id, "networks": "none"}},
                        **compute).json()["server"]
    made["server"] = (server["id"], f"{prefix}-server")
    wait_until(lambda: admin.get(f"/servers/{server['id']}", **compute).json()["server"]["status"] == "ACTIVE",
               "the server ACTIVE", timeout=180, interval=1)
    snapshot = admin.post(f"/servers/{server['id']}/action", json={"createImage": {"name": f"{prefix}-image"}},
                          **compute).json()["image_id"]        # stays queued: the fake driver uploads nothing
    made["image"] = (snapshot, f"{prefix}-image")
    volume = admin.post("/volumes", endpoint_filter=VOLUME,
                        json={"volume": {"name": f"{prefix}-volume", "size": 1}}).json()["volume"]
    wait_until(lambda: admin.get(f"/volumes/{volume['id']}", endpoint_filter=VOLUME).json()["volume"]["status"]
               == "available", "the volume available", timeout=120, interval=1)
    made["volume"] = (volume["id"], f"{prefix}-volume")
    shot = admin.post("/snapshots", endpoint_filter=VOLUME, json={"snapshot": {
        "volume_id": volume["id"], "name": f"{prefix}-snapshot"}}).json()["snapshot"]
    wait_until(lambda: admin.get(f"/snapshots/{shot['id']}", endpoint_filter=VOLUME).json()["snapshot"]["status"]
               == "available", "the snapshot available", timeout=120, interval=1)
    made["volume_snapshot"] = (shot["id"], f"{prefix}-snapshot")
    admin.post("/os-keypairs", json={"keypair": {"name": f"{prefix}-keypair"}}, **compute)
    made["keypair"] = (f"{prefix}-keypair", f"{prefix}-keypair")
    group = admin.post("/os-server-groups", json={"server_group": {"name": f"{prefix}-group",
                                                                   "policies": ["affinity"]}},
                       **compute).json()["server_group"]
    made["server_group"] = (group["id"], f"{prefix}-group")
    secgroup = admin.post("/v2.0/security-groups", json={"security_group": {"name": f"{prefix}-secgroup"}},
                          **network).json()["security_group"]
    made["security_group"] = (secgroup["id"], f"{prefix}-secgroup")
    project = admin.post("/projects", json={"project": {"name": f"{prefix}-project", "domain_id": "default"}},
                         **identity).json()["project"]
    made["project"] = (project["id"], f"{prefix}-project")
    user = admin.post("/users", json={"user": {"name": f"{prefix}-user", "domain_id": "default",
                                               "password": "Kinds-pw-1"}}, **identity).json()["user"]
    made["user"] = (user["id"], f"{prefix}-user")
    return made


@pytest.mark.parametrize("client", ["load", "cleanup"])
def test_every_kind_is_found_shown_and_deleted_on_real_services(realnova, monkeypatch, client):
    """The registry of kinds (kinds.KINDS) against real Nova, Glance, Cinder, Neutron and Keystone,
    through the load's client and novastress-cleanup's: the paths, keys and filters are theirs."""
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(realnova.clouds_yaml))
    prefix = f"ns-kr{client[0]}{uuid.uuid4().hex[:4]}"
    made = _one_of_each(realnova, prefix)
    parser = LocustArgumentParser()
    novastress_options.add_arguments(parser)
    environment = Environment(events=Events(), parsed_options=parser.parse_args(["--os-cloud", "realnova-admin"]))
    environment.create_local_runner()
    state = run_state(environment)
    load = OpenStackClient(state, state.ensure_target(), "kinds")
    call = load.request if client == "load" else connect(load.target, Settings(timeout=300)).call
    check_every_kind(call, made, timeout=90)
    assert realnova.leftovers(prefix) == {}


class Cleaner(NovaUser):
    abstract = True


def test_a_volume_left_reserved_for_a_deleted_server_is_reset_and_deleted(realnova, monkeypatch, caplog):
    """What real Nova leaves when a storm attach races the server's DELETE (500 BDMNotFound): a
    volume Cinder keeps reserved for the gone server. The user's cleanup finds the server in
    Cinder's attachments API (3.27), resets the volume as admin and deletes it: no leak."""
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(realnova.clouds_yaml))
    admin = realnova.session(admin=True)
    image = admin.get("/v2/images", endpoint_filter={"service_type": "image"}).json()["images"][0]["id"]
    flavor = admin.get("/flavors", endpoint_filter=COMPUTE).json()["flavors"][0]["id"]
    parser = LocustArgumentParser()
    novastress_options.add_arguments(parser)
    options = parser.parse_args(["--os-cloud", "realnova", *realnova.admin_options(), "--image", image,
                                 "--flavor", flavor, "--delete-timeout", "5", "--build-timeout", "120"])
    environment = Environment(events=Events(), parsed_options=options)
    environment.create_local_runner()
    state = run_state(environment)
    state.prefix, state.run_id = "ns", f"rsv{uuid.uuid4().hex[:4]}"
    user = Cleaner(environment)
    user.on_start()
    try:
        server = user.boot_server()
        volume = user.create_volume()
        attachment = user.client.request("volume", "POST", "/attachments", json={"attachment": {
            "volume_uuid": volume["id"], "instance_uuid": server["id"]}}, expect=(200,),
            microversion="3.27").json()["attachment"]
        assert attachment["status"] == "reserved", attachment
        user.delete_server(server)
        assert user.show("volume", volume["id"])["status"] == "reserved"   # Nova did not take it back
        user.cleanup()
        assert user.show("volume", volume["id"]) is None and not state.leaks, state.leaks
        assert re.search(rf"volume {volume['name']} stayed reserved, reserved for server {server['id']} which "
                         r"no longer exists \(an attach that raced its delete\); reset it as admin", caplog.text)
    finally:
        user.cleanup()
    assert realnova.leftovers(state.run_id) == {}


def test_novastress_cleanup_resets_a_volume_reserved_for_a_deleted_server(realnova):
    """The same leftover, cleaned by `novastress-cleanup --all-projects --yes` as admin: the
    volume's reservation is found through the attachments API and the volume reset and deleted."""
    member = realnova.session()
    marker = f"ns-rsc{uuid.uuid4().hex[:4]}"
    image = member.get("/v2/images", endpoint_filter={"service_type": "image"}).json()["images"][0]["id"]
    flavor = member.get("/flavors", endpoint_filter=COMPUTE).json()["flavors"][0]["id"]
    server = member.post("/servers", endpoint_filter=COMPUTE, json={"server": {
        "name": f"{marker}-1-server", "imageRef": image, "flavorRef": flavor, "networks": "none"}},
        headers={"OpenStack-API-Version": "compute 2.37"}).json()["server"]
    volume = member.post("/volumes", endpoint_filter=VOLUME,
                         json={"volume": {"name": f"{marker}-2-volume", "size": 1}}).json()["volume"]
    wait_until(lambda: member.get(f"/volumes/{volume['id']}", endpoint_filter=VOLUME).json()["volume"]["status"]
               == "available", "the volume available", timeout=120, interval=1)
    member.post("/attachments", endpoint_filter=VOLUME, headers={"OpenStack-API-Version": "volume 3.27"},
                json={"attachment": {"volume_uuid": volume["id"], "instance_uuid": server["id"]}})
    member.delete(f"/servers/{server['id']}", endpoint_filter=COMPUTE)
    wait_until(lambda: member.get(f"/servers/{server['id']}", endpoint_filter=COMPUTE,
                                  raise_exc=False).status_code == 404, "the server gone", timeout=120, interval=1)
    assert member.get(f"/volumes/{volume['id']}", endpoint_filter=VOLUME).json()["volume"]["status"] == "reserved"
    completed = realnova.cleanup("--prefix", "ns", "--all-projects", "--yes", "--poll-interval", "0.5")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert f"{marker}-2-volume on server {server['id']}" in completed.stdout, completed.stdout
    assert realnova.leftovers(marker) == {}


def test_a_shape_without_cinder_stops_it_and_takes_it_out_of_the_catalog(stacks, realnova):
    """Last of the module: the stack goes back to the default shape, the one without Cinder."""
    realnova = stacks.up(Shape(flavors=1, compute_hosts=1))
    rows = status_rows()
    assert not any(name in rows for name in CINDER_DAEMONS), rows
    assert rows and all(state == "running" for state in rows.values()), rows
    services = realnova.session(admin=True).get("/services", endpoint_filter={"service_type": "identity"}).json()
    assert not {s["type"] for s in services["services"]} & {"block-storage", "volumev3", "volume"}, services
    # the shape is remembered: an up that names no Cinder flag keeps it out
    completed = realnova_command("up", "--flavors", "1", "--compute-hosts", "1")
    assert completed.returncode == 0 and "no Cinder" in completed.stdout, completed.stdout + completed.stderr
    assert not any(name in status_rows() for name in CINDER_DAEMONS)

