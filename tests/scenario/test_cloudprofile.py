"""The cloud profile at start, and what a cloud lacks left out of the run: one line each, not a failure."""
from __future__ import annotations

import json
import re

import pytest
from locust_runs import FAST, run_locust, servers_named
from novastress_locust.cloudprofile import RESIZE, CloudProfile, Needs, Skip, skip_lines
from novastress_locust.storm import burst_size

from scenario_runs import ROOT, action_rows, leftovers, run_scenario

QUIET = ["--embedded-faults", "none", "--embedded-delay-scale", "0.1", *FAST]
NO_VOLUME = "compute,image,network,placement"


def profile_tables(output: str) -> list[str]:
    return re.findall(r"^novastress: cloud profile\n(?:  .*\n)+", output, re.M)


def skipping(output: str) -> list[str]:
    return re.findall(r"^novastress: skipping .*$", output, re.M)


def test_what_a_profile_lacks_is_said_in_words():
    small = CloudProfile(services={"compute": "v2.1 (2.1-2.60)", "network": "v2.0"},
                         compute_microversions=("2.1", "2.60"), flavors=["m1.nano"],
                         networks=[("private", False)], network="private-id", compute_hosts=1)
    assert small.lacks(RESIZE, "resize_confirm") == "the cloud has one flavor, resize needs two"
    assert small.lacks(Needs(services=("block-storage",)), "volume_create_delete") == \
        "the catalog has no volume service"
    assert small.lacks(Needs(floating_ip=True), "ssh_floating") == \
        "the cloud has no external network, floating IPs need one"
    assert small.lacks(Needs(compute_hosts=2), "live_migrate") == \
        "the cloud has one compute host, live_migrate needs two"
    assert small.lacks(Needs(microversion="2.79"), "x") == "the compute API goes up to microversion 2.60, x needs 2.79"
    assert small.lacks(Needs(admin=True, purpose="use_admin"), "x") == \
        "no admin credentials (--os-admin-username), use_admin needs them"
    assert small.lacks(Needs(services=("compute",), microversion="2.37"), "x") is None
    # unknown is no reason: without admin credentials the host count is not known
    assert CloudProfile(flavors=["a"]).lacks(Needs(compute_hosts=2), "x") is None
    assert CloudProfile.from_dict(small.as_dict()) == small
    assert skip_lines([Skip("storm action", "resize", "r"), Skip("storm action", "confirm_resize", "r"),
                       Skip("", "ssh_floating", "f"), Skip("storm action", "resize", "r")]) == \
        ["skipping storm actions resize, confirm_resize: r", "skipping ssh_floating: f"]


def test_anti_affinity_bursts_outnumber_the_hosts():
    assert [burst_size(0, "anti-affinity", hosts) for hosts in (1, 2, 3)] == [2, 3, 4]
    assert [burst_size(0, "affinity", hosts) for hosts in (1, 2, 3)] == [2, 2, 3]
    assert burst_size(0, "anti-affinity", None) == 2 and burst_size(5, "anti-affinity", 1) == 5


@pytest.mark.parametrize("processes", [[], ["--processes", "2"]], ids=["local", "two-workers"])
def test_bounce_on_one_flavor_skips_the_resizes_with_one_line_and_prints_the_profile_once(processes, tmp_path):
    # with workers the master says why, and each worker leaves the steps out by the profile it was sent
    summary_json = tmp_path / "summary.json"
    run = run_locust(["-f", "locustfiles/bounce.py", *QUIET, "--embedded-flavors", "1", "--max-runs", "1",
                      "-t", "60s", "--summary-json", str(summary_json), *processes], timeout=120)
    assert run.returncode == 0, run.output[-4000:]
    assert run.totals() == (4, 0)
    assert skipping(run.output) == ["novastress: skipping boot_and_bounce steps resize_confirm, resize_revert: "
                                    "the cloud has one flavor, resize needs two"]
    assert run.stats_row("ATOMIC", "resize") is None and run.stats_row("ATOMIC", "rebuild") == (4, 0)
    tables = profile_tables(run.output)
    assert len(tables) == 1, run.output[-4000:]
    assert re.search(r"^  services +.*compute v2\.1 \(2\.1-2\.\d+\), .*image v2\.\d+.*, network v2\.0", tables[0], re.M)
    assert re.search(r"^  flavors +1: m1\.nano \(booting m1\.nano\)$", tables[0], re.M)
    assert re.search(r"^  hosts +3 nova-compute up and enabled$", tables[0], re.M)
    assert "Traceback" not in run.output
    # the summary JSON says the same: the profile, and what it left out
    document = json.loads(summary_json.read_text())
    assert document["skipped"] == ["skipping boot_and_bounce steps resize_confirm, resize_revert: "
                                   "the cloud has one flavor, resize needs two"]
    assert len(document["profile"]["flavors"]) == 1 and document["profile"]["compute_hosts"] == 3
    assert document["backoffs"] == {}


def test_storm_without_cinder_on_one_flavor_fires_no_attach_and_no_resize():
    # the real minimal stack's shape: no Cinder, one flavor, no external and no tenant network (the
    # servers boot without addresses). No group bursts: with the log watched, the NoValidHost Nova
    # logs for a burst's extra anti-affinity member is a LOG failure of its own
    run = run_locust(["-f", "locustfiles/storm.py", *QUIET, "--embedded-services", NO_VOLUME,
                      "--embedded-flavors", "1", "--embedded-no-external-network", "--embedded-no-tenant-network",
                      "-u", "3", "-t", "8s",
                      "--storm-group-size", "-1", "--storm-plan-ratio", "0.5", "--quota-step", "0",
                      "--invariant-delete-timeout", "3", "--invariant-allocation-timeout", "2",
                      "--invariant-check-interval", "1", "--invariant-settle-timeout", "10"], timeout=120)
    assert run.returncode == 0, run.output[-4000:]
    runs, failed = run.totals()
    assert runs > 0 and failed == 0
    assert sorted(skipping(run.output)) == [
        "novastress: skipping storm action associate_floating_ip: the cloud has no external network, "
        "floating IPs need one",
        "novastress: skipping storm action attach_volume: the catalog has no volume service",
        "novastress: skipping storm actions resize, confirm_resize, revert_resize: the cloud has one flavor, "
        "resize needs two"]
    final = run.output.rpartition("Shutting down (exit code")[2]
    assert not re.search(r"resize|Resize|os-volume_attachments|create_volume|floatingips", final), final
    # the other actions still raced
    assert run.stats_row("POST", "compute POST /servers/{id}/action reboot")[0] > 0


def test_volume_scenario_without_cinder_is_skipped_and_nothing_is_left_to_run(cloud_factory):
    cloud = cloud_factory(services=NO_VOLUME, faults="none", delay_scale=0.1)
    run = run_scenario(cloud, ROOT / "locustfiles" / "etc" / "volume-create-delete-test.json", "-t", "20s")
    assert run.returncode == 2, run.output[-4000:]
    assert skipping(run.stderr) == ["novastress: skipping volume_create_delete: the catalog has no volume service"]
    assert run.stderr.strip().splitlines()[-1] == \
        "novastress: nothing left to run on this cloud: every action was skipped (see above)"
    assert "Traceback" not in run.output and "Statistics" not in run.stdout
    # no user spawned: no server, and no isolated project or user was made
    prefix = f"ns-{run.run_id}-"
    assert servers_named(cloud, prefix) == []
    admin = cloud.session(admin=True)
    for kind in ("projects", "users"):
        names = [record["name"] for record in admin.get(f"{cloud.base_url}/identity/v3/{kind}").json()[kind]]
        assert not [name for name in names if name.startswith(prefix)], names


def test_ssh_floating_without_an_external_network_has_nothing_left_to_run(cloud_factory):
    cloud = cloud_factory(external_network=False, faults="none", delay_scale=0.1)
    run = run_scenario(cloud, ROOT / "locustfiles" / "etc" / "ssh_floating.json", "-t", "20s")
    assert run.returncode == 2, run.output[-4000:]
    assert skipping(run.stderr) == ["novastress: skipping ssh_floating: the cloud has no external network, "
                                    "floating IPs need one"]
    assert "nothing left to run on this cloud" in run.stderr.strip().splitlines()[-1]
    assert "Traceback" not in run.output and action_rows(run) == {}
    assert leftovers(cloud, f"ns-{run.run_id}-") == {}


def test_a_test_marked_with_needs_is_skipped_where_the_cloud_lacks_them(cloud_factory, scenario_file):
    """A `unit_test` entry runs a test whose @stresstest(needs=...) says it needs floating IPs:
    on a cloud without an external network it is left out with one line, the other entry runs."""
    cloud = cloud_factory(external_network=False, faults="none", delay_scale=0.1)
    path = scenario_file(
        "- action: unit_test\n  threads: 1\n  kwargs:\n    test_method: tempest.scenario."
        "test_network_advanced_server_ops.TestNetworkAdvancedServerOps.test_server_connectivity_stop_start\n"
        "- action: server_create_destroy\n  threads: 1\n")
    run = run_scenario(cloud, path, "-t", "6s")
    assert run.returncode == 0, run.output[-4000:]
    assert skipping(run.stderr) == ["novastress: skipping test TestNetworkAdvancedServerOps."
                                    "test_server_connectivity_stop_start: the cloud has no external network, "
                                    "floating IPs need one"], run.stderr[-3000:]
    assert set(action_rows(run)) == {"server_create_destroy"}
    assert leftovers(cloud, f"ns-{run.run_id}-") == {}
