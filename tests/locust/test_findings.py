"""Findings: a run's occurrences grouped into what a bug report is about (5xx, log records,
invariants), in the summary, --summary-json and (tests/webui) the web UI's Findings tab."""
from __future__ import annotations

import json
import re
from pathlib import Path

from locust_runs import FAST, chaos, cli_credentials, run_locust
from logwatch.records import RecordGrouper
from novastress_locust.findings import (Finding, Findings, Occurrence, exception_type, log_service, normalise, occurrence_of,
                                        redact)
from novastress_locust.repro import replay_plan
from novastress_locust.requestlog import ActionRecord, RequestIndex

REAL_NOVA = Path(__file__).resolve().parents[1] / "logwatch" / "real-nova"
NOVA_500 = ("compute POST /servers/{id}/action -> 500 Unexpected API Error. Please report this at "
            "http://bugs.launchpad.net/nova/ and attach the Nova API log if possible.\n"
            "<class 'nova.exception.InstanceNotFound'> [req-{n}]")


def records(name: str) -> list:
    grouper = RecordGrouper()
    found = grouper.feed((REAL_NOVA / name).read_text() + "\n")
    last = grouper.flush()
    return [record for record in found + ([last] if last else []) if record.level in ("ERROR", "CRITICAL")]


def test_real_nova_records_group_by_service_logger_and_exception():
    findings = Findings()
    for name, service in (("nova-conductor.log.txt", "nova-conductor"), ("nova-compute.log.txt", "nova-compute"),
                          ("errors-neutron-down-delete.txt", "nova-compute")):
        for record in records(name):
            findings.add(Occurrence("log", f"compute-1:/var/log/nova/{service}.log", record.message,
                                    lines=record.lines, host="compute-1"))
    titles = {finding.title: finding.count for finding in findings.ranked()}
    # the conductor's NoValidHost is named by its class (the remote copy's _Remote taken off)
    assert titles["nova-conductor logs nova.exception.NoValidHost (nova.conductor.manager)"] == 1, titles
    assert titles["nova-compute logs NotImplementedError (oslo_messaging.rpc.server)"] == 1, titles
    assert titles["nova-compute logs keystoneauth1.exceptions.connection.ConnectFailure "
                  "(nova.compute.manager)"] == 1, titles


def test_occurrences_of_one_bug_are_one_finding_and_others_stay_apart():
    findings = Findings()
    ids = [f"req-{n:08d}-0000-0000-0000-000000000000" for n in range(4)]
    for n, request_id in enumerate(ids[:3]):
        findings.add(Occurrence("5xx", "compute POST /servers/{id}/action", NOVA_500.replace("req-{n}", request_id),
                                time=100.0 + n, status=500, request_ids=[request_id], action="storm",
                                user=f"Storm-{n}"))
    findings.add(Occurrence("5xx", "compute POST /servers/{id}/action",
                            NOVA_500.replace("InstanceNotFound", "InstanceInvalidState"), time=99.0, status=500,
                            request_ids=[ids[3]], action="storm", user="Storm-1"))
    findings.add(Occurrence("invariant", "server-group-policy", "g1: anti-affinity group has 1 members sharing",
                            time=105.0))
    ranked = findings.ranked()
    assert [(f.kind, f.count) for f in ranked] == [("invariant", 1), ("5xx", 3), ("5xx", 1)]
    main = ranked[1]
    assert main.title == "500 from compute POST /servers/{id}/action: nova.exception.InstanceNotFound"
    assert (main.first, main.last, main.request_ids, main.actions) == (100.0, 102.0, ids[:3], {"storm": 3})
    assert main.users == ["Storm-0", "Storm-1", "Storm-2"]
    assert main.id == "5xx-compute-post-servers-id-action-500-nova-exception-instancenotfound"
    # what a worker ships is what the master merges: the same findings
    worker = Findings()
    for occurrence in (Occurrence("5xx", "compute DELETE /servers/{id}", "x -> 503 Service Unavailable", status=503,
                                  request_ids=[ids[0]]),) * 2:
        worker.add(occurrence, ship=True)
    master = Findings()
    master.merge(json.loads(json.dumps(worker.shipped())))
    assert [(f.title, f.count) for f in master.ranked()] == [("503 from compute DELETE /servers/{id}: "
                                                              "Service Unavailable", 2)]
    assert worker.shipped() == {"occurrences": [], "dropped": 0}


def test_what_is_not_an_occurrence_and_what_normalising_takes_out():
    assert occurrence_of("POST", "compute POST /servers", Exception("-> 409 Conflict"), {"status": 409}) is None
    assert occurrence_of("ATOMIC", "boot_server", Exception("timeout"), {}) is None
    assert occurrence_of("GET", "compute GET /servers/{id}", None, {"status": 500}) is None
    assert normalise("Instance 3f1c2e9a-0000-4000-8000-00000000abcd at /var/lib/nova/x.img took 12.5 s 'big'") \
        == "Instance {id} at {path} took {n} s {text}"
    assert exception_type(["2026-11-28 05:41:32.753 18814 ERROR nova.api.openstack.wsgi [-] Unexpected exception "
                           "in API method: boom"]) is None
    # a host's own log file is its service's, like its peers'
    assert {log_service(name) for name in ("embedded:/logs/nova-compute-compute-2.log", "compute-1:/var/log/nova/"
                                           "nova-compute.log")} == {"nova-compute"}


def test_a_report_loses_every_secret():
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n-----END OPENSSH PRIVATE KEY-----"
    text = (f"password=hunter2hunter connect with {{'token': 'gAAAAABk-long-token'}} admin_password: s3cr3t!! "
            f"the run's own Xy9-secret-value and {key} stay out")
    cleaned = redact(text, ["Xy9-secret-value"])
    for secret in ("hunter2hunter", "gAAAAABk-long-token", "s3cr3t!!", "Xy9-secret-value", "b3BlbnNzaC1rZXk="):
        assert secret not in cleaned, cleaned
    assert cleaned.endswith("the run's own *** and *** stay out"), cleaned


def test_a_long_timeline_keeps_the_calls_that_led_to_its_last_named_request():
    # a storm round refused 300 times on one server, then the DELETE that mattered and a late look
    index = RequestIndex()
    for number in range(300):
        spin = ActionRecord("storm", "Storm-1", "local", f"req-spin-{number}", resource_ids=["srv"], started=100 + number)
        spin.calls.append([100 + number, "POST", "compute POST /servers/{id}/action resize", 409, f"req-spin-{number}",
                           "Storm-1", "resize", 1])
        index.add(spin)
    delete = ActionRecord("storm", "Storm-2", "local", "req-delete", resource_ids=["srv"], started=400)
    delete.calls += [[400, "DELETE", "compute DELETE /servers/{id}", 204, "req-delete", "Storm-2", "", 3],
                     [402, "GET", "compute GET /servers/{id}", 404, "req-look", "Storm-2", "", 1]]
    index.add(delete)
    calls = index.timeline(["req-delete"], window=400, most=50)
    assert len(calls) == 50 and calls == sorted(calls, key=lambda call: call[0])
    assert [call[4] for call in calls[-2:]] == ["req-delete", "req-look"]
    assert calls[0][4] == "req-spin-252"         # the 48 refused just before it; the first 252 dropped
    assert len(index.timeline(["req-delete"], window=400, most=400)) == 302


def test_a_replay_plan_holds_the_state_changes_that_raced_and_no_lock():
    # a lock, a shelve and (from the peer) the rebuild that lost; a resize refused and a look
    action = "compute POST /servers/{id}/action "
    timeline = [[10.0, "POST", action + "lock", 202, "req-1", "Storm-1", "lock", "storm", "u", 4],
                [10.004, "POST", action + "shelve", 202, "req-2", "Storm-1", "shelve", "storm", "u", 6],
                [10.005, "POST", action + "resize", 409, "req-3", "Storm-1", "resize", "storm", "u", 2],
                [10.006, "GET", "compute GET /servers/{id}", 200, "req-4", "Storm-1", "", "storm", "u", 1],
                [10.008, "POST", action + "rebuild", 500, "req-5", "Storm-1-peer", "rebuild", "storm", "u", 9]]
    finding = Finding("5xx", ["5xx", "compute", "POST /servers/{id}/action", "500",
                              "nova.exception.UnexpectedTaskStateError"], "500 from compute",
                      request_ids=[f"req-{n}" for n in range(1, 6)], timeline=timeline)
    plan = replay_plan(finding, {"run_id": "r1", "profile": {}})
    # the lock only turned the others into 409s (and would keep the reproducer's server from its delete)
    assert [(step["action"], step["at"], step["client"]) for step in plan["steps"]] == \
        [("shelve", 0.0, "member"), ("rebuild", 0.004, "peer")]
    assert (plan["status"], plan["cause"]) == (500, "UnexpectedTaskStateError")
    timeline[4][2:7] = [action + "unlock", 500, "req-5", "Storm-1", "unlock"]
    assert [step["action"] for step in replay_plan(finding, {})["steps"]] == ["lock", "shelve", "unlock"]


def test_a_replay_plan_brings_the_set_up_first_and_keeps_what_raced_just_before_the_5xx():
    # a stop that finished, then a double state change: the peer's rebuild, the start that lost
    action = "compute POST /servers/{id}/action "
    timeline = [[8.5, "POST", action + "os-stop", 202, "req-1", "Storm-1", "os-stop", "storm", "u", 5],
                [10.0, "POST", action + "rebuild", 202, "req-2", "Storm-1-peer", "rebuild", "storm", "u", 8],
                [10.002, "POST", action + "os-start", 500, "req-3", "Storm-1", "os-start", "storm", "u", 9]]
    finding = Finding("5xx", ["5xx", "compute", "POST /servers/{id}/action", "500",
                              "nova.exception.UnexpectedTaskStateError"], "500 from compute",
                      request_ids=["req-1", "req-2", "req-3"], timeline=timeline)
    plan = replay_plan(finding, {})
    # the reproducer stops its server and waits (the run's stop had finished); both racers stay
    assert plan["bring"] == "os-start"
    assert [(step["action"], step["at"], step["client"]) for step in plan["steps"]] == \
        [("rebuild", 0.0, "peer"), ("os-start", 0.002, "member")]
    timeline[1][2:7] = [action + "os-start", 409, "req-2", "Storm-1-peer", "os-start"]   # refused: no racer
    plan = replay_plan(finding, {})
    assert (plan["bring"], [step["action"] for step in plan["steps"]]) == ("os-start", ["os-start"])
    del timeline[0]                      # no stop in the plan: nothing to bring but the first step's
    assert replay_plan(finding, {})["bring"] is None


def test_a_run_groups_its_5xx_and_the_api_logs_they_left_into_findings(cloud_factory, tmp_path):
    cloud = cloud_factory(faults="none", delay_scale=0.1, seed=8)
    chaos(cloud, service="compute", method="POST", path=r"/servers$", kind="status", status=500, count=3)
    summary_json = tmp_path / "summary.json"
    findings_dir = tmp_path / "findings"
    run = run_locust(["-u", "2", "-t", "6s", *FAST, *cli_credentials(cloud), "--summary-json", str(summary_json),
                      "--target-logfiles", f"{cloud.log_dir}/*.log", "--log-discovery", "none",
                      "--log-check-interval", "0.5", "--findings-dir", str(findings_dir)], timeout=90)
    assert run.returncode == 1, run.output[-3000:]
    document = json.loads(summary_json.read_text())
    findings = {finding["title"]: finding for finding in document["findings"]}
    answered = findings.get("500 from compute POST /servers: RuntimeError")
    assert answered is not None, sorted(findings)
    assert answered["count"] == 3 and answered["actions"] == {"server_create_destroy": 3}, answered
    assert len(answered["request_ids"]) >= 3          # each boot's global request id (and a local one)
    logged = findings.get("nova-api logs RuntimeError (nova.api.wsgi)")
    assert logged is not None and logged["count"] == 3, sorted(findings)
    # the log records name the same requests: one bug seen from both sides
    assert set(logged["request_ids"]) & set(answered["request_ids"]), (logged, answered)
    assert logged["actions"] == {"server_create_destroy": 3}
    assert len(document["findings"]) == 2, sorted(findings)
    lines = re.findall(r"^FINDING (.*)$", run.stdout, re.M)
    assert re.search(r"^Findings: 2 \(6 occurrences\)$", run.stdout, re.M), run.stdout[-3000:]
    assert any(line.startswith("500 from compute POST /servers: RuntimeError: 3 times") for line in lines), lines

    # --findings-dir: one report per finding, a bug report with the requests that led to it
    reports = {path.parent.name: path.read_text() for path in findings_dir.glob("*/report.md")}
    assert sorted(reports) == ["5xx-compute-post-servers-500-runtimeerror",
                               "log-nova-api-nova-api-wsgi-runtimeerror"], sorted(reports)
    report = reports["5xx-compute-post-servers-500-runtimeerror"]
    assert report.startswith("# 500 from compute POST /servers: RuntimeError\n"), report[:300]
    assert "* Compute API microversions 2.1 to 2.104" in report and "## Expected" in report
    # the first occurrence's boot: its POST answered 500, with its request id, by the user that sent it
    # (sent first: 0 ms; the time it took to answer)
    row = re.search(r"^\| 0 \| \d+ \| (ServerCreateDestroy-\d) \| server_create_destroy \| compute POST /servers \| 500 \| "
                    r"(req-[0-9a-f-]{36}) \|$", report, re.M)
    assert row and row.group(2) in answered["request_ids"], report
    logged_report = reports["log-nova-api-nova-api-wsgi-runtimeerror"]
    assert "## The first record" in logged_report and "RuntimeError: injected fault" in logged_report
    password = cloud.credentials()["password"]
    assert all(password not in text for text in reports.values())
