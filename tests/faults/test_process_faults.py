"""Process-side faults: Ctrl-C and SIGTERM clean up before exit; after SIGKILL the cleanup tool does."""
from __future__ import annotations

import signal
import time

import pytest

from waiting import wait_until  # tests/ is on sys.path

from fault_helpers import (QUIET_CLOUD, SERVER_FLOATING_IP, Api, chaos, control, finish, leftovers,
                           run_cleanup, start_locust, wait_for_servers)


def deleting(cloud, prefix: str) -> list[str]:
    """Names of servers named prefix* that a delete is still removing."""
    admin = cloud.session(admin=True)
    servers = admin.get(f"{cloud.base_url}/compute/v2.1/servers/detail", params={"all_tenants": "1"}).json()["servers"]
    return [s["name"] for s in servers
            if s["name"].startswith(prefix) and (s.get("OS-EXT-STS:task_state") == "deleting" or s["status"] == "DELETED")]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_run_cleans_before_exit(cloud_factory, sig):
    cloud = cloud_factory(**QUIET_CLOUD)
    run_id = f"sig{int(sig)}"
    process = start_locust(cloud, "-u", "4", "-t", "60s", "--run-id", run_id, locustfile=SERVER_FLOATING_IP)
    wait_for_servers(cloud, f"ns-{run_id}-")
    run = finish(process, sig)
    assert "Statistics (per process):" in run.stdout, run.output[-3000:]
    assert leftovers(cloud, f"ns-{run_id}-") == {}
    assert "LEAKED" not in run.stdout


def test_sigkill_leaves_resources_that_the_cleanup_tool_removes(cloud_factory):
    cloud = cloud_factory(**QUIET_CLOUD)
    # two servers held in BUILD: whenever the kill lands, they are there to leak
    chaos(cloud, service="compute", kind="freeze", name="^ns-killed-", count=2)
    process = start_locust(cloud, "-u", "4", "-t", "60s", "--run-id", "killed", locustfile=SERVER_FLOATING_IP)
    wait_until(lambda: len(control(cloud, "GET", "/chaos").json()["rules"][0]["frozen"]) >= 2,
               "two servers booted by the run", 40, interval=0.2)
    time.sleep(0.5)   # the other users are somewhere in their actions by now
    process.kill()
    process.communicate(timeout=30)
    # deletes the killed users had already sent finish on their own; what stays is the leak
    wait_until(lambda: not deleting(cloud, "ns-killed-"), "in-flight deletes to finish", timeout=30)
    left = leftovers(cloud, "ns-killed-")
    assert len(left.get("servers", [])) >= 2, left
    listed = run_cleanup(cloud, "--run-id", "killed")
    assert listed.returncode == 0 and listed.row("servers")[0] == len(left["servers"]), listed.output
    assert leftovers(cloud, "ns-killed-") == left          # listing deleted nothing
    cleaned = run_cleanup(cloud, "--run-id", "killed", "--yes")
    assert cleaned.returncode == 0, cleaned.output
    assert cleaned.row("servers") == (len(left["servers"]),) * 2 + (0,)
    assert leftovers(cloud, "ns-killed-") == {}


def test_two_concurrent_runs_cleaning_one_spares_the_other_and_foreign_resources(cloud_factory):
    cloud = cloud_factory(**QUIET_CLOUD)
    member = Api(cloud, cloud.session())
    member.server("web-frontend", wait=False)
    member.server("ns-handmade", wait=False)        # our prefix, but no run id of a run
    member.floating_ip("reserved for DNS")
    victim = start_locust(cloud, "-u", "3", "-t", "60s", "--run-id", "runa", locustfile=SERVER_FLOATING_IP)
    survivor = start_locust(cloud, "-u", "3", "-t", "14s", "--run-id", "runb", locustfile=SERVER_FLOATING_IP)
    wait_for_servers(cloud, "ns-runa-")
    wait_for_servers(cloud, "ns-runb-")
    victim.kill()
    victim.communicate(timeout=30)
    cleaned = run_cleanup(cloud, "--run-id", "runa", "--yes")   # while run B keeps going
    assert cleaned.returncode == 0, cleaned.output
    assert "runb" not in cleaned.stdout
    assert leftovers(cloud, "ns-runa-") == {}
    other = finish(survivor)
    actions, failed = other.totals()
    # nothing was deleted from under run B: every one of its actions succeeded
    assert actions > 0 and failed == 0, other.output[-3000:]
    assert leftovers(cloud, "ns-runb-") == {}
    names = {s["name"] for s in member.get(f"{member.compute}/servers")["servers"]}
    assert {"web-frontend", "ns-handmade"} <= names
    assert "reserved for DNS" in {f["description"] for f in member.get(f"{member.network}/floatingips")["floatingips"]}
