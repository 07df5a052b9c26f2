"""A user whose setup fails (Keystone answers 500 while its isolated project is made) is a
`setup` ACTION row with the reason, counted in the summary and the exit code, and tries again
with back-off; nothing is left behind."""
from __future__ import annotations

import json

import requests

from scenario_runs import action_rows, leftovers, run_scenario


def test_a_failed_setup_is_counted_and_retried(cloud_factory, scenario_file, tmp_path):
    cloud = cloud_factory(faults="none", delay_scale=0.1, seed=5)
    admin = cloud.session(admin=True)
    rule = {"service": "identity", "method": "POST", "path": "/v3/projects", "kind": "status",
            "status": 500, "count": 2}
    response = requests.post(f"{cloud.base_url}/fakecloud/chaos", json={"rule": rule},
                             headers={"X-Auth-Token": admin.get_token()}, timeout=10)
    assert response.status_code == 201, response.text
    path = scenario_file("- action: server_create_destroy\n  threads: 2\n  use_isolated_tenants: true\n")
    summary_json = tmp_path / "summary.json"
    run = run_scenario(cloud, path, "-t", "8s", "--summary-json", str(summary_json))
    assert run.returncode == 1, run.output[-3000:]          # two setups failed
    assert "Traceback" not in run.output, run.output[-3000:]
    assert run.output.count("setup failed: identity POST /v3/projects -> 500") == 2, run.output[-3000:]
    users = run.summary()["users"]
    setups = [line for line in run.stdout.splitlines() if "(setup): Run" in line]
    assert sum(int(line.split("(")[-1].split()[0]) for line in setups) == 2, setups
    # the users then ran their actions
    assert set(action_rows(run)) >= {"setup", "server_create_destroy"}
    assert all(runs > 0 for name, (runs, _failed) in users.items()), users
    assert leftovers(cloud, f"ns-{run.run_id}-") == {}
    # each failed setup waited before the next try, and the summary says how often
    assert "setup backed off 2 times (each failed setup retried later)" in run.stdout, run.stdout[-2000:]
    document = json.loads(summary_json.read_text())
    assert document["backoffs"] == {"setup": 2}
    assert document["profile"]["compute_hosts"] == 3 and document["skipped"] == []
