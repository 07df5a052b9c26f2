"""A failure of the shared batched poll belongs to the waiter: its own row, pinned on no user's action."""
from __future__ import annotations

import json

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
