"""A cloud whose catalog lacks a service (no Cinder, no Neutron): the end of a run and
`novastress-cleanup` skip that service, never fail on it, and a LEAKED line names only what exists."""
from __future__ import annotations

import os
import re
import signal
from types import SimpleNamespace

import pytest
import yaml
from locust.argument_parser import LocustArgumentParser
from locust.env import Environment
from locust.event import Events

from cleanup_helpers import Api, run_cleanup
from locust_runs import FAST, clean_env, cli_credentials, run_locust
from novastress_locust import options as novastress_options, summary, sweep
from novastress_locust.cleanup import KindResult, Resource, Scope, SweepPass
from novastress_locust.state import RunState, run_state
from novastress_locust.user import NovaUser

QUIET = dict(faults="none", delay_scale=0.1, seed=11)
NO_VOLUME = "compute,image,network,placement"
NO_NETWORK = "compute,image,volume,placement"


def run_embedded(tmp_path, services: str, *extra: str):
    return run_locust(["-u", "4", *FAST, "--embedded-services", services, "--embedded-faults", "none",
                       "--embedded-delay-scale", "0.1", "--embedded-log-dir", str(tmp_path / "logs"),
                       *extra], env=clean_env(HOME=str(tmp_path)), timeout=90)


@pytest.mark.parametrize("services, absent", [(NO_VOLUME, {"block-storage", "volumev3"}),
                                               (NO_NETWORK, {"network"})])
def test_a_run_without_cinder_or_neutron_ends_clean(tmp_path, services, absent):
    clouds_yaml = tmp_path / "clouds.yaml"
    result = run_embedded(tmp_path, services, "-t", "8s", "--embedded-keep",
                          "--embedded-clouds-yaml", str(clouds_yaml))
    kept = re.search(r"keep running after Locust exits \(pid (\d+)\)", result.output)
    assert kept, result.output[-3000:]
    try:
        runs, failed = result.totals()
        assert runs > 0 and failed == 0, result.stdout[-3000:]
        assert "LEAKED" not in result.output and "final sweep could not run" not in result.output
        assert "Traceback" not in result.output
        assert result.returncode == 0, result.output[-3000:]
        # the cloud really had no Cinder, and the run left no server
        from keystoneauth1 import session
        from keystoneauth1.identity import v3
        entry = yaml.safe_load(clouds_yaml.read_text())["clouds"]["embedded-admin"]
        admin = session.Session(auth=v3.Password(**entry["auth"]))
        types = {service["type"] for service in admin.auth.get_access(admin).service_catalog.catalog}
        assert "compute" in types and not types & absent
        base = entry["auth"]["auth_url"].rsplit("/identity", 1)[0]
        servers = admin.get(f"{base}/compute/v2.1/servers/detail",
                            params={"all_tenants": "1", "name": f"^ns-{result.run_id}-"}).json()["servers"]
        assert servers == []
    finally:
        os.kill(int(kept.group(1)), signal.SIGTERM)


def test_without_glance_the_run_needs_an_image_id(tmp_path):
    result = run_embedded(tmp_path, "compute,volume,network,placement", "-t", "5s")
    assert result.returncode == 2, result.output[-3000:]
    assert "has no image service to choose an image from: give --image with an image id" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("services, missing", [(NO_VOLUME, "volume"), (NO_NETWORK, "network")])
def test_cleanup_skips_a_missing_service_and_deletes_the_rest(cloud_factory, services, missing):
    cloud = cloud_factory(services=services, **QUIET)
    member = Api(cloud, cloud.session())
    admin = Api(cloud, cloud.session(admin=True))
    member.server("ns-r1-a1-1-server", wait=False)
    admin.server("ns-r1-a1-2-server", wait=False)
    admin.keypair("ns-r1-a1-3-keypair")
    member.server("web-1", wait=False)
    admin.keypair("ops-key")
    if missing != "network":
        member.security_group("ns-r1-a1-4-secgroup")
        member.security_group("web")

    result = run_cleanup(cloud, "--all-projects", "--yes", admin=True)
    assert result.returncode == 0, result.output
    assert "Traceback" not in result.output
    assert result.row("servers") == (2, 2, 0)
    assert result.row("keypairs") == (1, 1, 0)
    skipped = ("volumes", "volume snapshots", "volume attachments") if missing == "volume" else \
        ("floating IPs", "security groups")
    for kind in skipped:
        assert re.search(rf"^{kind}\s+-\s+-\s+-$", result.stdout, re.M), result.stdout
        assert f"{kind}: skipped, no {missing} service in the catalog" in result.stdout
    if missing != "network":
        assert result.row("security groups") == (1, 1, 0)
        groups = {g["name"] for g in admin.get(f"{admin.network}/security-groups")["security_groups"]}
        assert "web" in groups and "ns-r1-a1-4-secgroup" not in groups
    servers = {s["name"] for s in admin.get(f"{admin.compute}/servers/detail", all_tenants="1")["servers"]
               if s["status"] != "DELETED"}
    assert servers == {"web-1"}
    keypairs = {k["keypair"]["name"] for k in admin.get(f"{admin.compute}/os-keypairs")["keypairs"]}
    assert keypairs == {"ops-key"}


# -- LEAKED names what exists, by id -------------------------------------------------------
def state_of(environment) -> RunState:
    state = run_state(environment)
    state.prefix, state.run_id = "ns", "r2"
    return state


def test_a_leak_without_an_id_is_never_reported_as_leaked():
    environment = SimpleNamespace(runner=None, parsed_options=None)
    state = state_of(environment)
    volumes = KindResult("volumes", failed=[(None, "could not list volumes: GET volume /volumes/detail -> 503")])
    stuck = Resource("server", "6f1c0e4e-1111-4111-8111-000000000001", "ns-r2-ab1-1-server")
    servers = KindResult("servers", found=[stuck], failed=[(stuck, "still ACTIVE after the cleanup timeout")])
    sweep.record(state, SweepPass(Scope("ns", "r2"), "project p1", {"servers": servers, "volumes": volumes}))

    text, failed = summary.render(state)
    assert failed
    assert "id unknown" not in text
    leaked = [line for line in text.splitlines() if line.startswith("LEAKED")]
    assert leaked == [f"LEAKED server ns-r2-ab1-1-server ({stuck.id}): still ACTIVE after the cleanup timeout"]
    assert "NOT CHECKED volumes ns-r2-* in project p1: could not list volumes" in text


def local_environment(cloud) -> Environment:
    parser = LocustArgumentParser()
    novastress_options.add_arguments(parser)
    parsed = parser.parse_args([*cli_credentials(cloud), "--status-poll-interval", "0.1",
                                "--build-timeout", "20", "--delete-timeout", "20"])
    parsed.stop_on_error = False
    environment = Environment(events=Events(), parsed_options=parsed)
    environment.create_local_runner()
    return environment


class VolumeUser(NovaUser):
    abstract = True


def test_a_volume_never_created_is_no_leak(cloud_factory):
    """On a cloud without Cinder a volume action fails before anything exists: its cleanup
    has nothing to delete and reports nothing."""
    cloud = cloud_factory(services=NO_VOLUME, **QUIET)
    environment = local_environment(cloud)
    state = state_of(environment)
    user = VolumeUser(environment)
    user.on_start()
    with user.action("volume_create_delete"):
        user.create_volume()
    assert state.tally[user.name]["volume_create_delete"] == [1, 1]
    assert user.tracked == {}
    assert state.leaks == []
    assert "LEAKED" not in summary.render(state)[0]
