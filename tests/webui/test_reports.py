"""--csv, --html and --summary-json carry our rows: ACTION, ATOMIC, LOG, actions per worker, log errors."""
from __future__ import annotations

import csv
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

from cluster import FAST, cli_credentials, run_locust  # noqa: E402


def test_csv_html_and_summary_files_carry_our_rows(cloud_factory, tmp_path):
    faulty = cloud_factory(faults="scheduler-capacity-race", delay_scale=0.1, seed=7,
                           extra_args=["--fault-probability", "scheduler-capacity-race=1.0"])
    out = tmp_path / "out"
    run = run_locust(["-u", "4", "-t", "60s", "--max-runs", "3", *FAST, *cli_credentials(faulty),
                      "--target-logfiles", f"{faulty.log_dir}/*.log", "--log-check-interval", "0.5",
                      "--log-discovery", "none", "--csv", str(out / "run"), "--html", str(out / "report.html"),
                      "--summary-json", str(out / "summary.json")], timeout=120)
    assert run.returncode == 1, run.output[-3000:]        # failed actions and logged errors
    password = faulty.credentials()["password"]

    with open(out / "run_stats.csv") as handle:
        rows = {(row["Type"], row["Name"]): row for row in csv.DictReader(handle)}
    assert rows[("ACTION", "server_create_destroy")]["Request Count"] == "12"
    assert ("ATOMIC", "boot_server") in rows
    logged = [row for (kind, _name), row in rows.items() if kind == "LOG"]
    assert logged and all(row["Failure Count"] == row["Request Count"] != "0" for row in logged)

    report = (out / "report.html").read_text()
    for needle in ('"ACTION"', '"ATOMIC"', '"LOG"', "server_create_destroy", "boot_server"):
        assert needle in report

    summary = json.loads((out / "summary.json").read_text())
    assert summary["totals"]["runs"] == 12 and summary["exit_code"] == 1
    assert summary["totals"]["log_errors"] == sum(int(row["Failure Count"]) for row in logged)
    assert [(row["action"], row["worker"], row["runs"]) for row in summary["actions"]] == \
        [("server_create_destroy", "local", 12)]
    assert summary["actions"][0]["failures"] == summary["totals"]["failed"] >= 1
    pinned = [row for row in summary["log_errors"] if row["action"] == "server_create_destroy"]
    assert pinned and all(row["request_id"].startswith("req-") for row in pinned)
    # the user that ran the action, in the JSON and the CSV alike
    assert all(row["user"].startswith("ServerCreateDestroy-") for row in pinned), pinned

    with open(out / "run_actions.csv") as handle:
        assert [row["runs"] for row in csv.DictReader(handle)] == ["12"]
    with open(out / "run_log_errors.csv") as handle:
        csv_rows = list(csv.DictReader(handle))
    assert len(csv_rows) == summary["totals"]["log_errors"]
    assert all(row["user"].startswith("ServerCreateDestroy-") for row in csv_rows
               if row["action"] == "server_create_destroy")
    # the conductor's records are one finding, in the JSON, the CSV and the companion page
    findings = [f for f in summary["findings"] if f["title"].startswith("nova-conductor logs")]
    assert [(f["kind"], f["count"]) for f in findings] == [("log", summary["totals"]["log_errors"])], \
        summary["findings"]
    with open(out / "run_findings.csv") as handle:
        assert [row["title"] for row in csv.DictReader(handle)] == [f["title"] for f in summary["findings"]]
    # the watch covered the cloud's log directory on this machine
    assert [(host["state"], bool(host["files"])) for host in summary["log_watch"]] == [("watched", True)]
    # Locust's report has no place for extra tables: the companion page beside it has them
    companion = (out / "report.novastress.html").read_text()
    assert "<h2>Actions</h2>" in companion and "<h2>Log errors</h2>" in companion
    assert "<h2>Findings</h2>" in companion and findings[0]["title"] in companion
    assert "nova-conductor.log" in companion and "server_create_destroy" in companion
    for path in out.iterdir():
        assert password not in path.read_text(), path
