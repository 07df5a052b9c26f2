"""A storm's race becomes one finding with a bug report and a standalone reproducer that makes it
happen again on fresh servers (the embedded cloud's ground truth says whether the race fired)."""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import requests

from locust_runs import FAST, clean_env, cli_credentials, run_locust, servers_named
from waiting import wait_until


def fired(cloud, fault: str) -> int:
    token = cloud.session(admin=True).get_token()
    response = requests.get(f"{cloud.base_url}/fakecloud/faults", headers={"X-Auth-Token": token}, timeout=10)
    return sum(record["fault"] == fault for record in response.json()["fired"])


def test_a_state_change_race_is_one_finding_whose_reproducer_brings_the_500_back(cloud_factory, tmp_path):
    cloud = cloud_factory(faults="state-change-race", delay_scale=0.1, seed=5,
                          extra_args=["--fault-probability", "state-change-race=1"])
    admin = cloud.credentials(admin=True)
    findings_dir = tmp_path / "findings"
    summary_json = tmp_path / "summary.json"
    run = run_locust(["-f", "locustfiles/storm.py", *FAST, *cli_credentials(cloud),
                      f"--os-admin-username={admin['username']}", f"--os-admin-password={admin['password']}",
                      f"--os-admin-project-name={admin['project_name']}", "-t", "8s", "-u", "2",
                      "--storm-double-ratio", "1", "--storm-plan-ratio", "0", "--storm-group-size", "-1",
                      "--storm-delete-ratio", "0", "--quota-step", "0",
                      "--summary-json", str(summary_json), "--findings-dir", str(findings_dir)], timeout=150)
    assert run.returncode == 1, run.output[-3000:]
    document = json.loads(summary_json.read_text())
    answered = [f for f in document["findings"] if f["kind"] == "5xx"]
    # every 500 of the race, whichever action lost it, is one finding
    assert [f["title"] for f in answered] == ["500 from compute POST /servers/{id}/action: "
                                              "nova.exception.UnexpectedTaskStateError"], document["findings"]
    finding = answered[0]
    assert finding["count"] == fired(cloud, "state-change-race") >= 1, finding
    folder = findings_dir / finding["id"]
    report = (folder / "report.md").read_text()
    assert re.search(r"\| 500 \| req-[0-9a-f-]{36} \|$", report, re.M), report
    assert admin["password"] not in report and cloud.credentials()["password"] not in report

    # the reproducer: Python and keystoneauth1, the cloud from the OS_* variables
    before = fired(cloud, "state-change-race")
    creds = cloud.credentials()
    env = clean_env(OS_AUTH_URL=creds["auth_url"], OS_USERNAME=creds["username"], OS_PASSWORD=creds["password"],
                    OS_PROJECT_NAME=creds["project_name"])
    findings_cli = str(Path(sys.executable).parent / "novastress-findings")
    listed = subprocess.run([findings_cli, str(findings_dir)], env=env, capture_output=True, text=True, timeout=60)
    assert re.search(rf"^{finding['id']}  {finding['count']}x  repro  500 from compute", listed.stdout, re.M), \
        listed.stdout + listed.stderr
    # run through novastress-findings, which hands the reproducer its arguments
    completed = subprocess.run([findings_cli, str(findings_dir), "repro", finding["id"][:24], "--times", "20",
                                "--timeout", "30"], cwd=tmp_path, env=env, capture_output=True, text=True,
                               timeout=200)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-3000:]
    came_back = re.search(r"^symptom came back in (\d+) of (\d+) tries$", completed.stdout, re.M)
    assert came_back and int(came_back.group(2)) == 20, output[-3000:]
    assert int(came_back.group(1)) >= 10, output[-3000:]
    # the cloud's ground truth: the race fired in those tries, and each symptom was its 500
    assert fired(cloud, "state-change-race") - before >= int(came_back.group(1)), output[-3000:]
    # the 500 names the finding's fault class
    assert re.search(r"^try \d+: SYMPTOM \S+ answered 500 UnexpectedTaskStateError \(req-", completed.stdout, re.M), \
        output[-3000:]
    # it made its servers under its own prefix and deleted them all, none given up on
    assert servers_named(cloud, "nsrepro-") == [] and "by hand" not in output, output[-3000:]

    # Ctrl-C mid-try: the reproducer deletes what it made and says so
    process = subprocess.Popen([sys.executable, str(folder / "repro.py"), "--times", "50", "--timeout", "30"],
                               cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in process.stdout:
        seen.append(line)
        if line.startswith("try 2:"):
            break
    wait_until(lambda: servers_named(cloud, "nsrepro-"), "a reproducer's server", timeout=30, interval=0.05)
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=120)
    assert process.returncode == 0 and "interrupted; deleting what it made" in rest, "".join(seen) + rest
    assert servers_named(cloud, "nsrepro-") == []
