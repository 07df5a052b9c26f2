"""A failure of the shared batched poll belongs to the waiter: its own row, pinned on no user's action."""
from __future__ import annotations

import json
import re
from pathlib import Path

from locust_runs import FAST, chaos, cli_credentials, run_locust


def test_a_failed_changes_since_poll_is_the_waiters_own_row(cloud_factory, tmp_path):
    cloud = cloud_factory(faults="none", delay_scale=0.1, seed=8)
    chaos(cloud, service="compute", method="GET", path=r"/servers/detail", kind="status", status=500, count=3)
    summary_json = tmp_path / "summary.json"
    run = run_locust(["-u", "3", "-t", "6s", *FAST, *cli_credentials(cloud), "--summary-json", str(summary_json),
                      "--target-logfiles", f"{cloud.log_dir}/*.log", "--log-discovery", "none",
                      "--log-check-interval", "0.5"], timeout=90)
    document = json.loads(summary_json.read_text())
    rows = {(row["type"], row["name"]): row for row in document["requests"]}
    waiter = rows.get(("GET", "compute GET /servers/detail?changes-since (waiter)"))
    assert waiter and waiter["failures"] == 3, sorted(rows)
    # a failed list is retried at the next interval: no user's action failed because of it
    assert all(row["failures"] == 0 for row in document["actions"]), document["actions"]
    assert not [row for row in document["log_errors"] if row["action"] and "changes-since" in "".join(row["lines"])]
    assert run.returncode == 1, run.output[-3000:]     # the cloud answered 500: a failed request


def test_a_list_that_answers_500_is_asked_again_in_smaller_pages(cloud_factory, tmp_path):
    # a real Nova answers 500 to a changes-since list of ~80 servers or more (Neutron refuses the
    # port lookup's long URL): the waiter asks again, 50 then 10 servers a page, in the same poll
    cloud = cloud_factory(faults="none", delay_scale=0.1, seed=9)
    chaos(cloud, service="compute", method="GET", path=r"/servers/detail", kind="status", status=500, count=2)
    summary_json = tmp_path / "summary.json"
    run = run_locust(["-u", "2", "-t", "5s", *FAST, *cli_credentials(cloud), "--summary-json", str(summary_json)],
                     timeout=90)
    document = json.loads(summary_json.read_text())
    rows = {(row["type"], row["name"]): row for row in document["requests"]}
    waiter = rows[("GET", "compute GET /servers/detail?changes-since (waiter)")]
    assert waiter["failures"] == 2 and waiter["requests"] > 2, waiter
    assert "asking for 50 servers a page" in run.output and "asking for 10 servers a page" in run.output
    api_log = (Path(cloud.log_dir) / "nova-api.log").read_text()
    assert re.search(r'"GET /v2\.1/servers/detail\?changes-since=[^"&]+&limit=10" status: 200', api_log), \
        api_log[-2000:]
    # nothing waited an interval longer for it: no action failed, the 500s are the cloud's finding
    assert all(row["failures"] == 0 for row in document["actions"]) and document["totals"]["runs"] > 0
    assert [f["title"] for f in document["findings"]] == ["500 from compute GET /servers/detail: RuntimeError"]
