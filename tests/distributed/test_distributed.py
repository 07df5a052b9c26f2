"""A real master and two real workers on loopback: one embedded cloud, one watcher, one summary."""
from __future__ import annotations

import json
import re
import secrets
import signal
from pathlib import Path

import pytest
from cluster import Cluster, cli_credentials, free_port, run_locust, servers_named
from locust_runs import chaos
from waiting import wait_until

RACE = ["--embedded-faults", "scheduler-capacity-race",
        "--embedded-delay-scale", "0.1", "--embedded-seed", "3"]


@pytest.fixture
def cluster(tmp_path):
    started = Cluster(tmp_path, free_port())
    yield started
    started.kill_all()


def worker_tags(summary_users: dict) -> set[str]:
    return {user.split("/", 1)[0] for user in summary_users}


def test_master_and_two_workers_share_one_cloud_one_watcher_one_summary(cluster, tmp_path):
    log_dir = tmp_path / "cloud-logs"
    summary_json = tmp_path / "summary.json"
    cluster.start_master(["--expect-workers", "2", "-u", "4", "-t", "60s", "--max-runs", "3",
                          "--embedded-log-dir", str(log_dir), *RACE,
                          # every boot racing its neighbour loses: failures and ERROR lines for sure
                          "--summary-json", str(summary_json)])
    cluster.start_workers(2)
    run = cluster.wait()
    workers = [cluster.output(f"worker{n}") for n in range(2)]

    # the master started the embedded cloud once; the workers never did, yet loaded it
    assert run.output.count("started the embedded cloud at") == 1, run.output[-3000:]
    assert all("embedded cloud" not in output for output in workers)
    # the workers had no cloud configured: every boot reached the master's cloud (the master boots none)
    api_log = (log_dir / "nova-api.log").read_text()
    assert api_log.count('"POST /v2.1/servers" status: 202') == 12

    # every worker's users in the Tempest-style summary, and the stats aggregated on the master
    summary = run.summary()
    assert len(summary["users"]) == 4 and len(worker_tags(summary["users"])) == 2, summary
    assert all(runs == 3 for runs, _failed in summary["users"].values())
    assert summary["runs"] == 12
    assert run.stats_row("ACTION", "server_create_destroy") == (12, summary["failed"])
    document = json.loads(summary_json.read_text())
    per_worker = {row["worker"]: row["runs"] for row in document["actions"]}
    assert sorted(per_worker.values()) == [6, 6] and set(per_worker) == worker_tags(summary["users"])

    # exactly one log watcher, on the master: its LOG failures are in the aggregated stats
    assert run.output.count("log watch: embedded cloud logs in") == 1
    assert all("log watch" not in output for output in workers)
    assert summary["failed"] >= 1, run.output[-3000:]
    logged = re.findall(r"^LOG\s+\S+\s+(\d+)\s+(\d+)\(", run.output.rpartition("Shutting down")[2], re.M)
    assert logged and sum(int(failures) for _n, failures in logged) == document["totals"]["log_errors"] >= 1
    assert all(row["host"] and row["lines"] for row in document["log_errors"])
    # the watcher ran before the workers' reports named the actions: rows are pinned late
    assert any(row["action"] == "server_create_destroy" and row["request_id"].startswith("req-")
               and row["user"].split("/")[0] in worker_tags(summary["users"]) for row in document["log_errors"])
    assert run.returncode == 1


def test_stop_on_error_from_a_worker_stops_every_worker(cluster, cloud_factory):
    faulty = cloud_factory(faults="scheduler-capacity-race", delay_scale=0.1, seed=3,
                           extra_args=["--fault-probability", "scheduler-capacity-race=1.0"])
    cluster.start_master(["--expect-workers", "2", "-u", "4", "-t", "90s", "--stop-on-error",
                          # no log errors: the stop must come from a worker's failed action
                          "--log-ignore", ".", *cli_credentials(faulty)])
    cluster.start_workers(2)
    run = cluster.wait()
    workers = [cluster.output(f"worker{n}") for n in range(2)]
    assert re.search(r"novastress: \S+ server_create_destroy failed \(--stop-on-error\), stopping the run",
                     run.output), run.output[-3000:]
    failed_on = [n for n, output in enumerate(workers) if "server_create_destroy failed [req-" in output]
    assert failed_on, "no worker reported the failed action"
    for output in workers:
        assert "Got quit message from master" in output
    assert run.returncode == 1
    assert run.summary()["failed"] >= 1
    assert servers_named(faulty, f"ns-{run.run_id}-") == []


def test_worker_killed_mid_run_master_sweep_removes_its_servers(cluster, cloud_factory, tmp_path):
    slow = cloud_factory(faults="none", delay_scale=0.5, seed=4)
    run_id = secrets.token_hex(3)
    summary_json = tmp_path / "summary.json"
    cluster.start_master(["--expect-workers", "2", "-u", "4", "-t", "15s", "--run-id", run_id,
                          "--summary-json", str(summary_json), *cli_credentials(slow)])
    cluster.start_workers(2)

    def tags_in_flight() -> set[str]:
        names = [server["name"] for server in servers_named(slow, f"ns-{run_id}-")]
        found = {re.match(rf"ns-{run_id}-([0-9a-f]{{4}})", name).group(1) for name in names}
        return found if len(found) == 2 else set()

    in_flight = wait_until(tags_in_flight, "servers of both workers", timeout=60, interval=0.2)
    cluster.workers[0].send_signal(signal.SIGKILL)
    cluster.workers[0].wait(timeout=10)
    run = cluster.wait()

    assert "failed to send heartbeat" in run.output       # Locust noticed the dead worker
    document = json.loads(summary_json.read_text())
    swept_tags = {re.match(rf"ns-{run_id}-([0-9a-f]{{4}})", name).group(1) for name in document["swept"]}
    # the killed worker's servers, and only its: the live worker deleted its own before the sweep
    assert len(swept_tags) == 1 and swept_tags <= in_flight, document["swept"]
    assert document["leaks"] == []
    assert servers_named(slow, f"ns-{run_id}-") == []
    assert "Swept" in run.stdout


def test_processes_fork_workers_that_share_the_masters_cloud(tmp_path):
    summary_json = tmp_path / "summary.json"
    run = run_locust(["--processes", "2", "-u", "4", "-t", "60s", "--max-runs", "2",
                      "--embedded-faults", "none", "--embedded-delay-scale", "0.1",
                      "--embedded-log-dir", str(tmp_path / "logs"), "--summary-json", str(summary_json),
                      "--status-poll-interval", "0.2", "--sla", "failure_rate=0,max_avg_duration=300"], timeout=120)
    assert run.returncode == 0, run.output[-3000:]
    assert run.output.count("started the embedded cloud at") == 1
    summary = run.summary()
    assert summary["runs"] == 8 and summary["failed"] == 0
    assert len(worker_tags(summary["users"])) == 2
    assert run.stats_row("ACTION", "server_create_destroy") == (8, 0)
    assert run.output.count("log watch: embedded cloud logs in") == 1
    document = json.loads(Path(summary_json).read_text())
    assert document["swept"] == [] and document["leaks"] == []
    # the SLA is judged on the master over both workers' iterations
    details = {v["criterion"]: (v["detail"], v["success"]) for v in document["sla"]["verdicts"]}
    assert details == {"failure_rate": ("0 of 8 failed", True), "max_avg_duration": ("8 successful", True)}, details


def test_only_the_master_injects_the_fault_schedule(cluster, tmp_path):
    summary_json = tmp_path / "summary.json"
    cluster.start_master(["--expect-workers", "2", "-u", "2", "-t", "8s", "--embedded-faults", "none",
                          "--embedded-delay-scale", "0.1", "--fault", "at=2s action=restart service=nova-api",
                          "--summary-json", str(summary_json)])
    cluster.start_workers(2)
    run = cluster.wait()
    document = json.loads(summary_json.read_text())
    assert [record["fault"] for record in document["faults"]] == ["restart nova-api"], run.output[-3000:]
    rows = [row for row in document["requests"] if row["type"] == "FAULT"]
    assert [(row["name"], row["requests"], row["failures"]) for row in rows] == [("restart nova-api", 1, 0)], rows
    assert run.output.count("fault: running on") == 1
    assert all("fault: running on" not in cluster.output(f"worker{n}") for n in range(2))
    # a request that landed in the restart's window got the embedded nova-api's 503 (the fault's
    # doing, and counted); nothing else went wrong
    assert all(f["kind"] == "5xx" and f["key"][3] == "503" and "nova-api is not running" in f["key"][4]
               for f in document["findings"]), document["findings"]
    assert run.returncode == (1 if document["totals"]["failed"] else 0), run.output[-3000:]


def test_the_workers_5xx_become_one_finding_on_the_master(cluster, cloud_factory, tmp_path):
    cloud = cloud_factory(faults="none", delay_scale=0.1, seed=6)
    chaos(cloud, service="compute", method="POST", path=r"/servers$", kind="status", status=500, count=4)
    summary_json = tmp_path / "summary.json"
    cluster.start_master(["--expect-workers", "2", "-u", "4", "-t", "60s", "--max-runs", "3",
                          "--summary-json", str(summary_json), *cli_credentials(cloud)])
    cluster.start_workers(2)
    run = cluster.wait()
    document = json.loads(summary_json.read_text())
    answered = [f for f in document["findings"] if f["kind"] == "5xx"]
    # every worker's occurrences, shipped with its reports, merged into one finding
    assert [(f["title"], f["count"]) for f in answered] == [("500 from compute POST /servers: RuntimeError", 4)], \
        document["findings"]
    assert answered[0]["actions"] == {"server_create_destroy": 4}
    assert {user.split("/")[0] for user in answered[0]["users"]} <= worker_tags(run.summary()["users"])
    assert "FINDING 500 from compute POST /servers: RuntimeError: 4 times" in run.stdout, run.stdout[-3000:]
    assert run.returncode == 1
