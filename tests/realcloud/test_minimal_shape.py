"""A real Nova in its smallest shape: one flavor, one compute host, no Cinder, no external
network. What the tool does there is what a new user sees first."""
from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
import yaml
from novastress_locust.realnova import Shape

from fault_proxy import FaultProxy
from realnova_stack import COMPUTE, LOCUST, ROOT, failure_rows, realnova_command, tools_own_failures
from waiting import wait_until

import sshd as sshd_helper
from locust_runs import signal_after_run_time

SHAPE = Shape(flavors=1, compute_hosts=1)
CREATE_DESTROY = "locustfiles/create_destroy.py"
UPTIME = "tests/realcloud/locustfiles/hypervisor_uptime.py"


def status_rows() -> dict[str, tuple[str, str]]:
    """novastress-realnova status: daemon -> (state, pid)."""
    completed = realnova_command("status", timeout=60)
    return {fields[0]: (fields[1] if fields[1] != "not" else "not answering", fields[-2])
            for fields in (line.split() for line in completed.stdout.splitlines()) if fields}


def test_up_on_a_running_stack_changes_nothing(realnova):
    before = status_rows()
    assert before and all(state == "running" for state, _pid in before.values()), before
    completed = realnova_command("up", "--flavors", "1", "--compute-hosts", "1")
    assert completed.returncode == 0, completed.stderr
    assert "real Nova 34 is up" in completed.stdout
    assert not re.search(r"installing|starting|restarting|preparing", completed.stdout), completed.stdout
    assert status_rows() == before


def test_a_crashed_service_is_restarted_by_up(realnova):
    pid = int(status_rows()["nova-scheduler"][1])
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while status_rows()["nova-scheduler"][0] != "stopped":
        assert time.monotonic() < deadline, "a killed nova-scheduler still counts as running"
        time.sleep(0.5)
    assert realnova_command("status", timeout=60).returncode == 1
    completed = realnova_command("up", "--flavors", "1", "--compute-hosts", "1")
    assert completed.returncode == 0, completed.stderr
    assert "nova-scheduler had stopped: starting it again" in completed.stdout
    state, new_pid = status_rows()["nova-scheduler"]
    assert state == "running" and int(new_pid) != pid


def test_create_destroy_runs_clean_and_leaves_nothing(realnova, tmp_path):
    summary_json = tmp_path / "summary.json"
    # with Nova's own phases of each boot, and an SLA the run meets
    run = realnova.locust(CREATE_DESTROY, "-u", "4", "-t", "20s", "--summary-json", str(summary_json),
                          "--server-timings", "--sla", "failure_rate=0,max_avg_duration=120")
    assert run.returncode == 0, run.output[-4000:]
    assert "LEAKED" not in run.output and "Traceback" not in run.output, run.output[-4000:]
    runs, failed = run.totals()
    assert runs >= 4 and failed == 0, run.output[-4000:]
    document = json.loads(summary_json.read_text())
    # a successful boot's one event in Nova 34, timed to the second (MariaDB keeps no fraction)
    phases = [request for request in document["requests"] if request["type"] == "NOVA"]
    assert [row["name"][:len("compute__do_build_and_run_instance on host ")] for row in phases] == \
        ["compute__do_build_and_run_instance on host "], phases
    assert phases[0]["requests"] >= runs and phases[0]["failures"] == 0, phases
    assert document["sla"]["passed"] is True, document["sla"]
    assert document["leaks"] == [], document["leaks"]
    assert realnova.leftovers(run.run_id) == {}
    assert realnova.project_usage("demo") == {}


def test_cleanup_without_cinder_deletes_only_the_prefix(realnova):
    member = realnova.session()
    marker = uuid.uuid4().hex[:6]
    ours, foreign = f"ns-{marker}-keypair", f"kept-{marker}-keypair"
    for name in (ours, foreign):
        member.post("/os-keypairs", endpoint_filter=COMPUTE, json={"keypair": {"name": name}})
    try:
        completed = realnova.cleanup("--run-id", marker, "--yes", cloud="realnova")
        assert completed.returncode == 0, completed.stdout + completed.stderr
        assert "Traceback" not in completed.stdout + completed.stderr
        assert "no volume service" in completed.stdout, completed.stdout
        left = realnova.leftovers(marker)
        assert left == {"keypairs": [foreign]}, left
        # the admin's view of every project, isolated users and projects included
        completed = realnova.cleanup("--all-projects", "--yes")
        assert completed.returncode == 0, completed.stdout + completed.stderr
        assert "Traceback" not in completed.stdout + completed.stderr
    finally:
        member.delete(f"/os-keypairs/{foreign}", endpoint_filter=COMPUTE, raise_exc=False)


def _pinned_rows(document: dict) -> list[dict]:
    return [row for row in document["log_errors"]
            if row["action"] == "hypervisor_uptime" and row["request_id"].startswith("req-")
            and "NotImplementedError" in "\n".join(row["lines"])]


def test_log_watch_on_this_machine_pins_real_errors_on_request_ids(realnova, tmp_path):
    summary_json = tmp_path / "summary.json"
    run = realnova.locust(UPTIME, "-t", "8s", "--target-logfiles", f"{realnova.log_dir}/*.log",
                          "--log-discovery", "none", "--log-check-interval", "1",
                          "--summary-json", str(summary_json), "--csv", str(tmp_path / "run"), cloud="realnova-admin")
    document = json.loads(summary_json.read_text())
    pinned = _pinned_rows(document)
    assert pinned, run.output[-4000:]
    assert all(row["file"].endswith("nova-compute-compute-1.log") for row in pinned), pinned
    # the request id in the record is the one the action sent on its calls
    assert all(row["request_id"] in "\n".join(row["lines"]) for row in pinned)
    # the log-errors CSV names the user whose action it was
    with open(tmp_path / "run_log_errors.csv") as handle:
        rows = [row for row in csv.DictReader(handle) if row["request_id"] in {r["request_id"] for r in pinned}]
    assert rows and all(row["user"].startswith("HypervisorUptime") and row["action"] == "hypervisor_uptime"
                        for row in rows), rows
    assert run.returncode == 1       # a log error is a failure of the run
    assert realnova.leftovers(run.run_id) == {}


def test_log_watch_over_ssh_pins_real_errors_on_request_ids(realnova, tmp_path):
    assert sshd_helper.available(), "OpenSSH server not installed: apt-get install openssh-server"
    key = sshd_helper.make_key(tmp_path / "id_ed25519")
    server = sshd_helper.start_sshd(tmp_path / "sshd", authorized=[key])
    try:
        known_hosts = sshd_helper.write_known_hosts(tmp_path / "known_hosts", [server])
        summary_json = tmp_path / "summary.json"
        down = sshd_helper.free_port()      # a second node whose sshd is down: named, never silent
        run = realnova.locust(
            UPTIME, "-t", "8s", "--target-logfiles", f"{realnova.log_dir}/*.log",
            "--log-hosts", f"{server.address}:{server.port},127.0.0.1:{down}", "--log-discovery", "none",
            "--target-ssh-user", server.user, "--target-private-key-path", str(key),
            "--known-hosts", str(known_hosts), "--log-check-interval", "1",
            "--summary-json", str(summary_json), cloud="realnova-admin")
    finally:
        server.stop()
    document = json.loads(summary_json.read_text())
    pinned = _pinned_rows(document)
    assert pinned, run.output[-4000:]
    assert all(row["host"].startswith(server.address) for row in pinned), pinned
    assert run.returncode == 1
    states = {host["host"]: host["state"] for host in document["log_watch"]}
    assert states == {f"{server.address}:{server.port}": "watched", f"127.0.0.1:{down}": "never reached"}, states
    assert f"127.0.0.1:{down}: NEVER REACHED" in run.stdout, run.stdout[-3000:]


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_signal_ends_the_run_in_bounded_time_and_leaves_nothing(realnova, tmp_path, stop):
    summary_json = tmp_path / "summary.json"
    process = realnova.start_locust(CREATE_DESTROY, "-u", "4", "-t", "120s", "--summary-json", str(summary_json))
    time.sleep(15)                   # users are booting and deleting
    process.send_signal(stop)
    try:
        stdout, stderr = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError(f"the run did not end within 120 s of {stop.name}")
    output = stdout + stderr
    run_id = re.search(r"run id (\w+);", output).group(1)
    assert "LEAKED" not in output, output[-4000:]
    assert json.loads(summary_json.read_text())["leaks"] == []
    assert realnova.leftovers(run_id) == {}
    assert realnova.project_usage("demo") == {}


def test_sigterm_during_the_quota_step_restores_the_quota_before_the_summary(realnova):
    """SIGTERM while the end of the run is at work (real builds keep the quota step's boots busy):
    the summary waits for the restore and the sweep, so nothing is left and the quota is back."""
    quotas = realnova.quotas("demo")
    command = [LOCUST, "-f", "locustfiles/storm.py", "--headless", "--os-cloud", "realnova",
               *realnova.admin_options(), "-t", "15s", "-u", "2", "--storm-pool-size", "2",
               "--storm-group-ratio", "0", "--quota-step", "2", "--snapshot-timeout", "5"]
    # 3 s after -t: the end of the run is settling the pool, then the quota step
    output = signal_after_run_time(command, realnova.env(), 3, timeout=300).output
    run_id = re.search(r"run id (\w+);", output).group(1)
    # the SIGTERM came during the end: while the users' own cleanup ran (the stop then runs the end
    # itself) or while the end was at work (the summary says it waits for it)
    assert "Got SIGTERM signal" in output, output[-4000:]
    undeletable = set(re.findall(r"INVARIANT server-not-deleted: InvariantViolation\('([0-9a-f-]{36})", output))
    leaked = set(re.findall(r"^LEAKED server \S+ \(([0-9a-f-]{36})\)", output, re.M))
    assert leaked <= undeletable and "NOT CHECKED" not in output, output[-4000:]
    realnova.force_delete_servers(run_id)
    assert realnova.leftovers(run_id) == {}
    assert realnova.quotas("demo") == quotas, output[-4000:]      # restored before the process ended
    assert realnova.project_usage("demo") == {}


def test_bounce_skips_resize_with_one_flavor_and_runs_the_rest(realnova):
    run = realnova.locust("locustfiles/bounce.py", "-u", "2", "-t", "30s")
    assert "skipping boot_and_bounce steps resize_confirm, resize_revert: the cloud has one flavor" \
        in run.output, run.output[-4000:]
    assert "Traceback" not in run.output
    assert tools_own_failures(run) == [], run.output[-4000:]
    assert run.returncode == (1 if failure_rows(run) else 0), run.output[-4000:]
    runs, _failed = run.totals()
    assert runs > 0
    assert realnova.leftovers(run.run_id) == {}


def test_storm_runs_what_the_cloud_can_and_every_failure_is_the_clouds(realnova):
    quotas = realnova.quotas("demo")
    # the cloud's logs watched: what Nova logs for a burst racing for its one host (NoValidHost,
    # the late anti-affinity check) and for the quota step's re-check is expected, not a LOG row
    run = realnova.locust("locustfiles/storm.py", *realnova.admin_options(), "-t", "30s", "-u", "4",
                          "--quota-step", "2", "--snapshot-timeout", "5", "--log-local",
                          "--target-logfiles", f"{realnova.log_dir}/nova-*.log", "--log-discovery", "none",
                          timeout=420)
    for skipped in ("resize", "attach_volume", "associate_floating_ip"):
        assert re.search(rf"skipping storm actions? [^\n]*\b{skipped}\b", run.output), (skipped, run.output[-4000:])
    # none of the tool's own (the watched Nova records quote Nova's tracebacks)
    assert not re.search(r"^Traceback \(most recent call last\)", run.output, re.M), run.output[-6000:]
    assert tools_own_failures(run) == [], run.output[-4000:]
    assert "NOT CHECKED" not in run.output, run.output[-4000:]
    # a server Nova itself would not delete (a real race: stuck in a task state) is the cloud's
    # finding, reported as server-not-deleted; only such a server may be LEAKED
    undeletable = set(re.findall(r"INVARIANT server-not-deleted: InvariantViolation\('([0-9a-f-]{36})", run.output))
    leaked = set(re.findall(r"^LEAKED server \S+ \(([0-9a-f-]{36})\)", run.stdout, re.M))
    assert leaked <= undeletable and "LEAKED" not in re.sub(r"^LEAKED server .*$", "", run.stdout, flags=re.M), \
        run.output[-4000:]
    # Nova's quota re-check: racing boots accepted past the limit are put in ERROR, not a violation
    assert run.stats_row("POST", "compute POST /servers (quota step)") is not None, run.output[-4000:]
    assert "quota-exceeded" not in run.output, run.output[-4000:]
    expected_logged = r"NoValidHost|GroupAffinityViolation|instance group policy|TooManyInstances"
    assert not [row for row in failure_rows(run) if re.match(r"\d+\s+LOG\s", row)
                and re.search(expected_logged, row)], run.output[-4000:]
    realnova.force_delete_servers(run.run_id)
    assert realnova.leftovers(run.run_id) == {}
    assert realnova.project_usage("demo") == {}
    assert realnova.quotas("demo") == quotas          # the quota step restored what it lowered


SCENARIOS = sorted(p.name for p in (ROOT / "locustfiles" / "etc").iterdir())


@pytest.mark.parametrize("name", SCENARIOS)
def test_shipped_scenarios_run_what_the_cloud_can(realnova, name):
    # every user runs its entry once (Tempest's -n 1): isolated tenants and real builds take a
    # while, and a fixed -t could end before the first action does
    run = realnova.locust("locustfiles/scenario.py", f"--scenario=locustfiles/etc/{name}",
                          *realnova.admin_options(), "--max-runs", "1", "-t", "120s", timeout=300)
    assert "Traceback" not in run.output, run.output[-4000:]
    if "nothing left to run on this cloud" in run.output:
        # every entry needs what this cloud lacks (Cinder, an external network): one line, exit 2
        assert run.returncode == 2 and "skipping" in run.output, run.output[-4000:]
        return
    assert tools_own_failures(run) == [], run.output[-4000:]
    assert "LEAKED" not in run.output, run.output[-4000:]
    runs, _failed = run.totals()
    assert runs > 0, run.output[-4000:]
    assert realnova.leftovers(run.run_id) == {}


def test_all_marked_actions_run_what_the_cloud_can(realnova):
    run = realnova.locust("locustfiles/all.py", "-t", "20s")
    assert "Traceback" not in run.output, run.output[-4000:]
    assert "skipping" in run.output          # the volume and floating-IP actions
    assert tools_own_failures(run) == [], run.output[-4000:]
    assert realnova.leftovers(run.run_id) == {}


# -- the defects a real cloud shows only now and then, made certain --------------------------
def test_a_keystone_500_while_a_user_sets_up_is_counted_and_retried(realnova, tmp_path):
    """A real Keystone behind a proxy that answers the first two project creations with 500: each
    is a `setup` ACTION row with its reason, counted in the summary and the exit code, retried after
    a back-off; then the users run, and no isolated project or user is left."""
    scenario = tmp_path / "isolated.yaml"
    scenario.write_text("- action: server_create_destroy\n  threads: 2\n  use_isolated_tenants: true\n")
    summary_json = tmp_path / "summary.json"
    keystone = yaml.safe_load(realnova.clouds_yaml.read_text())["clouds"]["realnova"]["auth"]["auth_url"]
    with FaultProxy(re.sub(r"/v3/?$", "", keystone), fail=[("POST", "/v3/projects", 500, 2)]) as proxy:
        proxied = realnova.through_auth_url(f"{proxy.url}/v3", tmp_path / "clouds.yaml")
        run = proxied.locust("locustfiles/scenario.py", f"--scenario={scenario}", *realnova.admin_options(),
                             "--max-runs", "1", "-t", "120s", "--summary-json", str(summary_json), timeout=300)
    assert proxy.injected == 2, run.output[-3000:]
    assert run.returncode == 1, run.output[-3000:]            # the cloud failed two setups
    assert "Traceback" not in run.output, run.output[-3000:]
    assert run.output.count("setup failed: identity POST /v3/projects -> 500") == 2, run.output[-3000:]
    setups = [line for line in run.stdout.splitlines() if "(setup): Run" in line]
    assert sum(int(line.split("(")[-1].split()[0]) for line in setups) == 2, setups
    assert "setup backed off 2 times (each failed setup retried later)" in run.stdout, run.stdout[-2000:]
    document = json.loads(summary_json.read_text())
    assert document["backoffs"] == {"setup": 2}, document["backoffs"]
    ran = [row for row in document["users"] if row["action"] == "server_create_destroy"]
    assert len(ran) == 2 and all(row["runs"] == 1 and row["failed"] == 0 for row in ran), document["users"]
    assert realnova.leftovers(run.run_id) == {}


def _freeze_the_scheduler_for_each_unshelve(realnova, prefix: str, stop: threading.Event,
                                            frozen_for: list[str], deadline: float) -> None:
    """Once a server of the run is shelving, nova-scheduler is frozen: the unshelve that follows
    waits in it, the storm's DELETE lands first, and the claim comes 2 s after the server is gone."""
    admin = realnova.session(admin=True)
    while not stop.is_set() and time.monotonic() < deadline:
        servers = admin.get("/servers/detail", endpoint_filter=COMPUTE,
                            params={"all_tenants": "1", "name": f"^{prefix}-"}).json()["servers"]
        shelving = [server for server in servers if server["status"] in ("SHELVED", "SHELVED_OFFLOADED")
                    or (server.get("OS-EXT-STS:task_state") or "").startswith("shelving")]
        if not shelving:
            time.sleep(0.1)
            continue
        server_id = shelving[0]["id"]
        with realnova.frozen("nova-scheduler"):
            frozen_for.append(server_id)
            until = min(deadline, time.monotonic() + 30)
            while time.monotonic() < until:
                shown = admin.get(f"/servers/{server_id}", endpoint_filter=COMPUTE, raise_exc=False)
                if shown.status_code == 404 or shown.json()["server"]["status"] == "DELETED":
                    break
                time.sleep(0.1)
            time.sleep(2)


def test_an_unshelve_claim_landing_after_the_delete_is_reported_as_a_leak(realnova, tmp_path):
    """Nova's unshelve/delete race, made certain: the storm's race plan shelves a server, unshelves it
    and DELETEs it while the unshelve waits in a frozen nova-scheduler; thawed, the scheduler PUTs
    allocations for a server that is gone. The allocation check, reading after the DELETE, reports the
    leak on that server with the requests that touched it; compute's periodic task heals it later."""
    prefix = f"nsfz{uuid.uuid4().hex[:6]}"
    stop, frozen_for = threading.Event(), []
    freezer = threading.Thread(target=_freeze_the_scheduler_for_each_unshelve,
                               args=(realnova, prefix, stop, frozen_for, time.monotonic() + 200), daemon=True)
    freezer.start()
    try:
        run = realnova.locust("locustfiles/storm.py", *realnova.admin_options(), "--prefix", prefix,
                              "-t", "40s", "-u", "1", "--storm-pool-size", "1", "--storm-actions", "unshelve",
                              "--storm-plan-ratio", "1", "--storm-delete-ratio", "0", "--storm-group-ratio", "0",
                              "--storm-double-ratio", "0", "--quota-step", "0",
                              "--summary-json", str(tmp_path / "summary.json"), timeout=300)
    finally:
        stop.set()
        freezer.join(60)
    assert frozen_for, run.output[-4000:]
    violations = json.loads((tmp_path / "summary.json").read_text())["violations"]
    leaks = [row for row in violations if row["kind"] == "placement-allocations-leak"]
    assert leaks, run.output[-4000:]
    assert {row["subject"] for row in leaks} <= set(frozen_for), (leaks, frozen_for)
    assert all(row["request_ids"] for row in leaks), leaks
    assert run.returncode == 1, run.output[-4000:]
    assert tools_own_failures(run) == [], run.output[-4000:]
    assert realnova.leftovers(run.run_id) == {}
    # what nova-compute's periodic task would heal within a minute, removed now for the next tests
    placement = {"endpoint_filter": {"service_type": "placement"},
                 "headers": {"OpenStack-API-Version": "placement 1.28"}}
    admin = realnova.session(admin=True)
    for server_id in frozen_for:
        admin.delete(f"/allocations/{server_id}", raise_exc=False, **placement)
    assert realnova.project_usage("demo") == {}


def test_a_failed_changes_since_poll_is_the_waiters_own_row(realnova, tmp_path):
    """Real Nova behind a proxy that answers the first three batched changes-since polls with 500:
    they are the waiter's own failures, on its row; no user's action fails because of them."""
    member = realnova.session()
    nova = re.match(r"https?://[^/]+", member.get_endpoint(**COMPUTE)).group(0)
    keystone = re.sub(r"/v3/?$", "", yaml.safe_load(realnova.clouds_yaml.read_text())["clouds"]["realnova"]["auth"]
                      ["auth_url"])
    summary_json = tmp_path / "summary.json"
    with FaultProxy(nova, fail=[("GET", r"/v2\.1/servers/detail\?.*changes-since.*", 500, 3)]) as compute:
        # the catalog Keystone hands out names the compute proxy instead of Nova
        with FaultProxy(keystone, fail=[], rewrite=[(nova, compute.root)]) as identity:
            proxied = realnova.through_auth_url(f"{identity.url}/v3", tmp_path / "clouds.yaml")
            run = proxied.locust(CREATE_DESTROY, "-u", "2", "-t", "20s", "--summary-json", str(summary_json))
    assert compute.injected == 3, run.output[-3000:]
    document = json.loads(summary_json.read_text())
    rows = {(row["type"], row["name"]): row for row in document["requests"]}
    waiter = rows.get(("GET", "compute GET /servers/detail?changes-since (waiter)"))
    assert waiter and waiter["failures"] == 3, sorted(rows)
    # a failed list is retried at the next interval: no user's action failed because of it
    assert document["actions"] and all(row["failures"] == 0 for row in document["actions"]), document["actions"]
    # a poll retried at the next interval fails no action; with no log watched nothing else failed
    assert run.returncode == 0, run.output[-3000:]
    assert realnova.leftovers(run.run_id) == {}


def _services_up(realnova) -> dict[str, str]:
    services = realnova.session(admin=True).get("/os-services", endpoint_filter=COMPUTE).json()["services"]
    return {f"{s['binary']}@{s['host']}": s["state"] for s in services}


def test_compute_and_conductor_restarted_mid_run_come_back_and_nothing_is_left(realnova, tmp_path):
    summary_json = tmp_path / "summary.json"
    run = realnova.locust(
        CREATE_DESTROY, "-u", "4", "-t", "45s", *realnova.admin_options(), "--fault-preset", "realnova",
        # the conductor first: a compute still starting when the conductor restarts under it loses
        # its init_host calls and exits 60 s later (MessagingTimeout), a Nova finding of its own
        "--fault", "at=5s action=restart service=nova-conductor",
        "--fault", "at=25s action=restart service=nova-compute host=compute-1",
        "--target-logfiles", f"{realnova.log_dir}/*.log", "--log-discovery", "none", "--log-check-interval", "1",
        "--summary-json", str(summary_json), timeout=420)
    output = run.output
    assert "Traceback" not in output and "FAULT NOT RESTORED" not in output, output[-4000:]
    document = json.loads(summary_json.read_text())
    faults = {record["fault"]: record for record in document["faults"]}
    assert set(faults) == {"restart nova-compute@compute-1", "restart nova-conductor"}, document["faults"]
    for label, record in faults.items():
        # the command worked and the service's heartbeat came back (os-services, as admin)
        assert record["error"] is None and record["not_back"] is None, record
        assert record["back_seconds"] is not None and record["back_seconds"] > 0, record
        assert re.search(rf"FAULT \+\d+\.\ds {re.escape(label)}: command \d+\.\d s, back in \d+\.\d s", run.stdout)
    rows = {(row["type"], row["name"]) for row in document["requests"]}
    assert {("FAULT", "restart nova-compute@compute-1"), ("RECOVERY", "nova-compute@compute-1 back"),
            ("RECOVERY", "nova-conductor back")} <= rows, sorted(rows)
    # what the logs said is pinned on an action, or marked as said while a fault was under way
    assert all(row["action"] or row["fault"] for row in document["log_errors"]), document["log_errors"]
    # a delete the restarted conductor lost is deleted again: nothing leaks, nothing is left
    assert document["leaks"] == [] and "LEAKED" not in output, output[-4000:]
    assert realnova.leftovers(run.run_id) == {}
    assert realnova.project_usage("demo") == {}
    # and the stack is healthy: every daemon running, every Nova service up
    assert all(state == "running" for state, _pid in status_rows().values()), status_rows()
    wait_until(lambda: set(_services_up(realnova).values()) == {"up"}, timeout=90, interval=2,
               what="every Nova service up after the faults")


# what a restarted compute or conductor does to actions under way: builds put in ERROR by the
# compute's init_host, deletes and actions whose RPC the conductor lost (reverted after
# rpc_response_timeout, so the wait for them runs out)
FAULTS_CONSEQUENCE = re.compile(r"still (DELETING|BUILD|ACTIVE|SHUTOFF|PAUSED|REBOOT|HARD_REBOOT|SUSPENDED)|"
                                r"timed out|did not become|could not delete", re.I)


def test_a_storm_through_compute_and_conductor_restarts_reports_them_and_leaves_nothing(realnova, tmp_path):
    summary_json = tmp_path / "summary.json"
    run = realnova.locust(
        "locustfiles/storm.py", *realnova.admin_options(), "-t", "45s", "-u", "4", "--snapshot-timeout", "5",
        "--fault-preset", "realnova",
        "--fault", "at=8s action=restart service=nova-conductor",
        "--fault", "at=28s action=restart service=nova-compute host=compute-1",
        "--target-logfiles", f"{realnova.log_dir}/nova-*.log", "--log-discovery", "none",
        "--log-check-interval", "1", "--summary-json", str(summary_json), timeout=480)
    assert not re.search(r"^Traceback \(most recent call last\)", run.output, re.M), run.output[-6000:]
    assert "FAULT NOT RESTORED" not in run.output and "NOT CHECKED" not in run.output, run.output[-4000:]
    document = json.loads(summary_json.read_text())
    assert [(record["fault"], record["error"], record["not_back"]) for record in document["faults"]] == [
        ("restart nova-conductor", None, None), ("restart nova-compute@compute-1", None, None)], document["faults"]
    assert all(record["back_seconds"] is not None for record in document["faults"]), document["faults"]
    # every failure is the cloud's: its 5xx, its ERROR states, its logs, or what the faults did
    own = [row for row in tools_own_failures(run) if not FAULTS_CONSEQUENCE.search(row)
           and not re.match(r"\d+\s+(FAULT|RECOVERY)\s", row)]
    assert own == [], run.output[-4000:]
    assert all(row["action"] or row["fault"] for row in document["log_errors"]), document["log_errors"]
    undeletable = set(re.findall(r"INVARIANT server-not-deleted: InvariantViolation\('([0-9a-f-]{36})", run.output))
    leaked = {leak["id"] for leak in document["leaks"] if leak["kind"] == "server"}
    assert leaked <= undeletable and all(leak["kind"] == "server" for leak in document["leaks"]), document["leaks"]
    realnova.force_delete_servers(run.run_id)
    assert realnova.leftovers(run.run_id) == {}
    assert realnova.project_usage("demo") == {}
    assert all(state == "running" for state, _pid in status_rows().values()), status_rows()
    wait_until(lambda: set(_services_up(realnova).values()) == {"up"}, timeout=90, interval=2,
               what="every Nova service up after the faults")


def test_a_real_state_change_race_is_one_finding_whose_reproducer_brings_the_500_back(realnova, tmp_path):
    """Real Nova answers 500 (UnexpectedTaskStateError from instance.save) instead of 409 when two
    state changes of one server pass the API's state check together: a storm whose every action goes
    out with a second one by the other credential makes it one finding, and its reproducer, run
    against the same cloud with both credentials, brings the 500 back."""
    findings_dir = tmp_path / "findings"
    run = realnova.locust("locustfiles/storm.py", *realnova.admin_options(), "-t", "25s", "-u", "3",
                          "--storm-actions", "pause,unpause,suspend,resume,stop,start,rebuild",
                          "--storm-double-ratio", "1", "--storm-plan-ratio", "0", "--storm-group-size", "-1",
                          "--storm-delete-ratio", "0", "--quota-step", "0",
                          "--summary-json", str(tmp_path / "summary.json"), "--findings-dir", str(findings_dir),
                          timeout=300)
    assert tools_own_failures(run) == [], run.output[-4000:]
    findings = json.loads((tmp_path / "summary.json").read_text())["findings"]
    raced = [f for f in findings if f["kind"] == "5xx" and f["title"].endswith("UnexpectedTaskStateError")]
    # every 500 of the race, whichever action lost it, is the one finding
    assert [f["title"] for f in raced] == ["500 from compute POST /servers/{id}/action: "
                                           "nova.exception.UnexpectedTaskStateError"], findings
    finding = raced[0]
    report = (findings_dir / finding["id"] / "report.md").read_text()
    assert re.search(r"\| 500 \| req-[0-9a-f-]{36} \|$", report, re.M), report
    password = yaml.safe_load(realnova.clouds_yaml.read_text())["clouds"]["realnova"]["auth"]["password"]
    assert password not in report
    realnova.force_delete_servers(run.run_id)
    assert realnova.leftovers(run.run_id) == {}

    findings_cli = str(Path(LOCUST).parent / "novastress-findings")
    completed = subprocess.run([findings_cli, str(findings_dir), "repro", finding["id"], "--os-cloud", "realnova",
                                "--peer-cloud", "realnova-admin", "--times", "20", "--timeout", "60"],
                               cwd=tmp_path, env=realnova.env(), capture_output=True, text=True, timeout=900)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-3000:]
    came_back = re.search(r"^symptom came back in (\d+) of 20 tries$", completed.stdout, re.M)
    assert came_back and int(came_back.group(1)) >= 1, output[-3000:]
    # each symptom is the finding's own: a 500 naming UnexpectedTaskStateError, whose request id
    # nova-api logged with that traceback
    answered = re.findall(r"answered 500 UnexpectedTaskStateError \((req-[0-9a-f-]{36})\)", completed.stdout)
    assert answered, output[-3000:]
    api_log = (realnova.log_dir / "nova-api.log").read_text(errors="replace")
    assert any(re.search(rf"{request_id}.*\n(?:.*\n){{0,40}}?.*UnexpectedTaskStateError", api_log)
               for request_id in answered[:3]), answered
    # it made its servers (and their images) under its own prefix and deleted them all
    assert realnova.leftovers("nsrepro-") == {}
