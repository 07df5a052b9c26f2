"""--fault: services of the embedded cloud killed, restarted and frozen on a schedule during the
load; FAULT and RECOVERY rows, the consequences a real cloud shows, everything restored."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import requests

from fault_helpers import CREATE_DESTROY, LOCUST, QUIET_CLOUD, ROOT, Api, clean_env, control, leftovers, run_cleanup
from locust_runs import LocustRun


def embedded_run(tmp_path, *args: str, timeout: float = 150) -> tuple[LocustRun, dict]:
    summary = tmp_path / "summary.json"
    completed = subprocess.run(
        [LOCUST, "-f", CREATE_DESTROY, "--headless", "--status-poll-interval", "0.2", "--embedded-faults", "none",
         "--embedded-delay-scale", "0.5", "--embedded-log-dir", str(tmp_path / "logs"),
         "--summary-json", str(summary), *args],
        cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=timeout)
    run = LocustRun(completed.returncode, completed.stdout, completed.stderr)
    return run, json.loads(summary.read_text()) if summary.exists() else {}


def test_a_compute_killed_mid_build_errors_its_builds_and_the_run_reports_the_fault_and_recovery(tmp_path):
    run, summary = embedded_run(tmp_path, "-u", "6", "-t", "14s",
                                "--fault", "at=3s action=kill service=nova-compute host=all for=3s",
                                "--fault", "at=9s action=restart service=nova-api")
    output = run.output
    faults = {fault["fault"]: fault for fault in summary["faults"]}
    assert set(faults) == {"kill nova-compute@compute-1", "kill nova-compute@compute-2",
                           "kill nova-compute@compute-3", "restart nova-api"}, output[-3000:]
    for fault in faults.values():
        assert fault["error"] is None and fault["back_seconds"] is not None, fault
    assert any(fault["next_success"] for fault in faults.values()), faults
    assert "FAULT +3.0s kill nova-compute@compute-1: command" in output
    assert "FAULT NOT RESTORED" not in output
    # a build the killed compute had in hand is ERROR after its restart, with no instance fault, as
    # nova-compute's init_host does: once the compute is back, the run's servers are looked at
    assert re.search(r"INVARIANT error-without-fault: .*ERROR with no fault to say why, after kill "
                     r"nova-compute@compute-\d", output), output[-3000:]
    assert "stuck-after-fault" not in output
    assert "RECOVERY" in run.stderr and "nova-compute@compute-2 back" in run.stderr
    assert summary["leaks"] == [] and "LEAKED" not in output


def test_a_fault_after_a_number_of_actions_starts_once_they_have_ended(tmp_path):
    run, summary = embedded_run(tmp_path, "-u", "3", "-t", "10s", "--fault", "after=6 action=restart service=nova-api")
    assert [fault["fault"] for fault in summary["faults"]] == ["restart nova-api"], run.output[-3000:]
    fault = summary["faults"][0]
    assert fault["error"] is None and fault["back_seconds"] is not None, fault
    # six create/destroy cycles of the embedded cloud do not end in the first second
    assert fault["at"] > 1.0, fault
    assert re.search(r"FAULT \+\d+\.\ds restart nova-api: command \d+\.\d s, back in", run.stdout), run.stdout[-2000:]
    assert run.returncode == 0, run.output[-3000:]


def test_a_service_left_stopped_by_the_schedule_is_started_again_at_the_end(tmp_path):
    run, summary = embedded_run(tmp_path, "-u", "2", "-t", "8s", "--fault", "at=2s action=stop service=nova-api")
    assert "FAULT +2.0s stop nova-api: command" in run.output
    assert "nova-api was stopped by the fault schedule: started again at the end of the run" in run.output
    assert summary["leaks"] == [], run.output[-3000:]


@pytest.mark.parametrize("spec, message", [
    ("at=3s action=explode service=nova-api", "action=explode; use one of restart, kill"),
    ("at=3s action=kill service=nova-cells", "service=nova-cells; use one of"),
    ("action=kill service=nova-api", "say when, with at=30s"),
    ("at=soon action=kill service=nova-api", "at=soon is not a duration"),
    ("at=1s action=restart service=nova-api for=3s", "for= goes with kill and freeze only"),
    ("after=0 action=kill service=nova-api", "after=0 must be a number of actions"),
    ("at=1s after=5 action=kill service=nova-api", "at= and after= both say when"),
])
def test_a_wrong_fault_is_one_line_and_exit_2_before_any_load(tmp_path, spec, message):
    run, _ = embedded_run(tmp_path, "-t", "5s", "--fault", spec, timeout=60)
    assert run.returncode == 2 and message in run.stderr, run.output[-2000:]
    assert "Traceback" not in run.output


def test_a_real_clouds_preset_is_refused_on_the_embedded_cloud(tmp_path):
    run, _ = embedded_run(tmp_path, "-t", "5s", "--fault", "at=1s action=kill service=nova-api",
                          "--fault-preset", "devstack", timeout=60)
    assert run.returncode == 2 and "--fault-preset devstack acts on a real cloud's services" in run.stderr


def test_the_embedded_services_answer_and_hold_work_as_real_ones_do(cloud_factory):
    cloud = cloud_factory(**QUIET_CLOUD)
    compute = f"{cloud.base_url}/compute/v2.1/"
    assert control(cloud, "POST", "/services", {"service": "nova-api", "action": "stop"}).json()["state"] == "stopped"
    assert requests.get(compute, timeout=10).status_code == 503
    assert control(cloud, "POST", "/services", {"service": "nova-api", "action": "start"}).status_code == 200
    assert requests.get(compute, timeout=10).status_code == 200
    frozen = control(cloud, "POST", "/services", {"service": "nova-compute", "host": "compute-2", "action": "freeze"})
    assert frozen.json() == {"service": "nova-compute", "host": "compute-2", "state": "frozen"}
    listed = {(row["service"], row["host"]): row for row in control(cloud, "GET", "/services").json()["services"]}
    assert listed[("nova-compute", "compute-2")]["state"] == "frozen"
    assert control(cloud, "POST", "/services", {"service": "nova-compute", "host": "compute-9",
                                                "action": "kill"}).status_code == 404
    assert control(cloud, "POST", "/services", {"service": "nova-compute", "host": "compute-2",
                                                "action": "thaw"}).json()["state"] == "running"


def test_a_delete_lost_with_a_restarted_conductor_is_reverted_and_the_cleanup_deletes_it_again(cloud_factory):
    # as Nova 34 did under a conductor restart: the compute's call times out, the task state is
    # reverted, the server is ACTIVE again and every DELETE meanwhile was ignored
    cloud = cloud_factory(faults="none", delay_scale=1.0, seed=5)
    api = Api(cloud, cloud.session())
    server = api.server("ns-lostdel-1-server")
    url = f"{api.compute}/servers/{server['id']}"
    assert api.session.delete(url, headers={"OpenStack-API-Version": "compute 2.37"}).status_code == 204
    control(cloud, "POST", "/services", {"service": "nova-conductor", "action": "restart"})
    assert api.get(url)["server"]["OS-EXT-STS:task_state"] == "deleting"
    cleanup = run_cleanup(cloud, "--run-id", "lostdel", "--yes")    # its DELETE is ignored, then redone
    assert cleanup.returncode == 0, cleanup.output
    assert leftovers(cloud, "ns-lostdel-") == {}
    compute_log = "".join(path.read_text() for path in Path(cloud.log_dir).glob("nova-compute-*.log"))
    assert "MessagingTimeout: Timed out waiting for a reply" in compute_log
    assert "Successfully reverted task state from deleting on failure" in compute_log


def test_a_scenarios_faults_run_with_the_command_lines(tmp_path):
    scenario = tmp_path / "faults.yaml"
    scenario.write_text("entries: [{action: server_create_destroy, threads: 2}]\n"
                        "faults: [{at: 2s, action: restart, service: nova-api}]\n")
    summary = tmp_path / "summary.json"
    completed = subprocess.run(
        [LOCUST, "-f", "locustfiles/scenario.py", f"--scenario={scenario}", "--headless", "-t", "6s",
         "--status-poll-interval", "0.2", "--embedded-faults", "none", "--embedded-delay-scale", "0.5",
         "--embedded-log-dir", str(tmp_path / "logs"), "--summary-json", str(summary),
         "--fault", "at=4s action=freeze service=nova-scheduler for=1s"],
        cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=120)
    run = LocustRun(completed.returncode, completed.stdout, completed.stderr)
    document = json.loads(summary.read_text())
    assert sorted(fault["fault"] for fault in document["faults"]) == ["freeze nova-scheduler", "restart nova-api"], \
        run.output[-3000:]
    assert all(fault["error"] is None for fault in document["faults"]), document["faults"]
    assert run.returncode == 0, run.output[-3000:]


def test_a_server_a_fault_caught_in_flight_must_hold_its_flavor_in_placement_once_settled(cloud_factory):
    import gevent
    from novastress_locust.cloud import Retry, RetryingClient
    from novastress_locust.credentials import CloudTarget
    from novastress_locust.faultplan import Aftermath, ServerReads, admin_call
    cloud = cloud_factory(**QUIET_CLOUD)
    admin = cloud.session(admin=True)
    api = Api(cloud, admin)
    server = api.server("ns-alloc-1-server")
    urls = {"compute": api.compute, "placement": f"{cloud.base_url}/placement"}
    # the admin client the fault checks use
    call = admin_call(RetryingClient(CloudTarget("password", cloud.credentials(admin=True), "test"),
                                     Retry(retries=0), deadline=float("inf")))

    # its reboot held (as a compute coming back holds it), and Placement losing its allocation meanwhile
    assert control(cloud, "POST", "/chaos", {"rule": {"service": "compute", "kind": "freeze",
                                                      "name": "^ns-alloc-"}}).status_code == 201
    api.post(f"{api.compute}/servers/{server['id']}/action", {"reboot": {"type": "SOFT"}})
    found: list[tuple[str, str, str]] = []
    aftermath = Aftermath(ServerReads(call, "ns-alloc-1-"), lambda *violation: found.append(violation), 0.1)
    checking = gevent.spawn(aftermath.check, "restart nova-compute@compute-1", 20)
    gevent.sleep(0.5)                                    # it has the rebooting server in hand
    assert admin.delete(f"{urls['placement']}/allocations/{server['id']}").status_code == 204
    assert control(cloud, "DELETE", "/chaos").status_code == 200
    checking.join(timeout=30)
    assert [(kind, subject) for kind, subject, _detail in found] == [("allocations-after-fault", server["id"])]
    assert "Placement holds nothing for it, its flavor says DISK_GB=1, MEMORY_MB=512, VCPU=1" in found[0][2], found
    assert "after restart nova-compute@compute-1" in found[0][2]
