"""--sla: each of Rally's criteria judged on timings built to pass and built to fail (in this
process, on Locust's own stats entries), then whole runs against the embedded cloud: the SLA
table, --summary-json's "sla", the exit codes (3: only the SLA failed) and --sla-abort."""
from __future__ import annotations

import argparse
import csv
import io
import json
import re

import pytest
from locust.stats import RequestStats

from locust_runs import cli_credentials, run_locust
from novastress_locust.report import RunReport
from novastress_locust.sla import parse


def report_of(iterations: dict[str, list[tuple[int, bool]]], atomics: dict[str, list[int]] = ()) -> RunReport:
    """A RunReport fed as the events feed it: action -> [(ms, ok)], atomic step -> [ms]."""
    report = RunReport()
    report.record_successes = True          # as with --sla given
    for action, runs in iterations.items():
        for ms, ok in runs:
            report.on_request("local", "ACTION", action, ms, None if ok else RuntimeError("boom"), None)
    for step, times in dict(atomics).items():
        for ms in times:
            report.on_request("local", "ATOMIC", step, ms, None, None)
    return report


def verdict(report: RunReport, text: str, violations: int = 0) -> tuple[bool, str]:
    (one,) = report.judge(parse(text), violations)
    return one.success, one.value


STEADY = [(1000, True)] * 20


@pytest.mark.parametrize("criterion, passing, failing", [
    ("failure_rate=10", {"boot": STEADY + [(900, False)]}, {"boot": STEADY + [(900, False)] * 5}),
    ("max_seconds_per_iteration=2", {"boot": STEADY}, {"boot": STEADY + [(2500, False)]}),
    ("max_avg_duration=1.1", {"boot": STEADY + [(9000, False)]}, {"boot": STEADY + [(3000, True)] * 5}),
    ("outliers=0", {"boot": [(1000 + i, True) for i in range(30)]},
     {"boot": [(1000, True)] * 200 + [(60000, True)]}),
    ("performance_degradation=50", {"boot": [(1000, True), (1400, True)]},
     {"boot": [(1000, True), (1600, True)]}),
])
def test_each_action_criterion_passes_and_fails_as_rally_says(criterion, passing, failing):
    assert verdict(report_of(passing), criterion)[0] is True
    assert verdict(report_of(failing), criterion)[0] is False


def test_failed_iterations_count_for_the_rate_and_the_longest_only():
    report = report_of({"boot": [(1000, True)] * 9 + [(30000, False)]})
    assert verdict(report, "failure_rate=10") == (True, "10.00 %")
    assert verdict(report, "max_avg_duration=1") == (True, "1.000 s")        # successful ones only
    assert verdict(report, "max_seconds_per_iteration=29") == (False, "30.000 s")   # every one


def test_outliers_need_their_minimum_of_iterations():
    report = report_of({"boot": [(1000, True)] * 8 + [(60000, True)]})
    assert verdict(report, "outliers=0") == (True, "not judged")
    assert verdict(report, "outliers=0,outliers.min_iterations=5,outliers.sigmas=2") == (False, "1")


def test_atomic_and_run_criteria():
    report = report_of({"boot": STEADY}, {"boot_server": [4000, 6000], "delete_server": [100]})
    assert verdict(report, "max_avg_duration_per_atomic.boot_server=5") == (True, "5.000 s")
    assert verdict(report, "max_avg_duration_per_atomic.boot_server=4.9") == (False, "5.000 s")
    assert verdict(report, "max_avg_duration_per_atomic.resize=1") == (True, "no steps")
    report.log_error_count = 3
    assert verdict(report, "max_log_errors=3") == (True, "3")
    assert verdict(report, "max_log_errors=2") == (False, "3")
    assert verdict(report, "max_invariant_violations=0", violations=1) == (False, "1")


def test_workers_timings_merge_on_the_master():
    worker_a, worker_b = report_of({"boot": [(1000, True)] * 3}), report_of({"boot": [(4000, True), (500, False)]})
    master = RunReport()
    master.merge("aaaa", worker_a.stripped())
    master.merge("bbbb", worker_b.stripped())
    assert verdict(master, "max_avg_duration=1.74") == (False, "1.750 s")
    assert verdict(master, "failure_rate=20") == (True, "20.00 %")
    assert isinstance(master.successes, RequestStats)


@pytest.mark.parametrize("text, message", [
    ("failure_rate", "has no value"),
    ("failure_rat=1", "unknown SLA criterion 'failure_rat'"),
    ("max_avg_duration=fast", "not a number"),
    ("max_avg_duration=-1", "at least 0"),
    ("outliers=1.5", "a whole number"),
    ("max_avg_duration_per_atomic=3", "name the atomic step"),
    ("failure_rate=1,failure_rate=2", "given twice"),
    ("outliers.sigmas=0", "greater than zero"),
])
def test_a_bad_criterion_names_what_is_wrong(text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(message)):
        parse(text)


def test_a_mapping_from_a_scenario_file_is_read_like_the_option():
    assert parse({"failure_rate": 1, "outliers": 2, "outliers.sigmas": 3}).text() == \
        parse("failure_rate=1, outliers=2, outliers.sigmas=3").text() == \
        "failure_rate=1,outliers=2,outliers.sigmas=3,outliers.min_iterations=10"


# -- whole runs --------------------------------------------------------------------------------
def create_destroy(cloud, *args: str, timeout: float = 60):
    """create_destroy against the session's quiet embedded cloud."""
    return run_locust([*cli_credentials(cloud), *args], timeout=timeout)


def test_a_run_within_its_sla_exits_0_and_says_so(cloud, tmp_path):
    summary = tmp_path / "summary.json"
    run = create_destroy(cloud, "-u", "2", "-t", "8s", "--summary-json", str(summary),
                     "--sla", "failure_rate=0,max_seconds_per_iteration=120,max_avg_duration_per_atomic.boot_server=60,"
                              "max_log_errors=0,max_invariant_violations=0")
    assert run.returncode == 0, run.output[-3000:]
    assert re.search(r"^  failure_rate\s+server_create_destroy\s+<= 0 %\s+0\.00 %\s+Passed$", run.stdout, re.M), \
        run.stdout[-3000:]
    assert "SLA passed" in run.stdout
    document = json.loads(summary.read_text())
    assert document["sla"]["passed"] is True and document["exit_code"] == 0
    assert {v["criterion"] for v in document["sla"]["verdicts"]} == {
        "failure_rate", "max_seconds_per_iteration", "max_avg_duration_per_atomic.boot_server", "max_log_errors",
        "max_invariant_violations"}


def test_a_run_that_breaks_only_its_sla_exits_3_and_names_the_criterion(cloud, tmp_path):
    summary = tmp_path / "summary.json"
    run = create_destroy(cloud, "-u", "2", "-t", "8s", "--summary-json", str(summary),
                         "--sla", "max_avg_duration=0.001,failure_rate=0", "--csv", str(tmp_path / "run"),
                         "--html", str(tmp_path / "run.html"))
    assert run.returncode == 3, run.output[-3000:]
    assert re.search(r"^  max_avg_duration\s+server_create_destroy\s+<= 0\.001 s\s+\S+ s\s+FAILED$", run.stdout,
                     re.M), run.stdout[-3000:]
    assert "SLA FAILED: 1 of 2 criteria" in run.stdout
    document = json.loads(summary.read_text())
    assert document["sla"]["passed"] is False and document["exit_code"] == 3
    rows = list(csv.DictReader(io.StringIO((tmp_path / "run_sla.csv").read_text())))
    assert [(row["criterion"], row["success"]) for row in rows] == [("max_avg_duration", "False"),
                                                                   ("failure_rate", "True")]
    page = (tmp_path / "run.novastress.html").read_text()
    assert "SLA FAILED: max_avg_duration=0.001,failure_rate=0" in page and "<h2>SLA</h2>" in page


def test_sla_abort_stops_the_run_at_the_first_failed_criterion(cloud, tmp_path):
    run = create_destroy(cloud, "-u", "2", "-t", "600s",
                     "--sla", "max_seconds_per_iteration=0.001", "--sla-abort", timeout=120)
    assert run.returncode == 3, run.output[-3000:]
    assert re.search(r"SLA failed \(--sla-abort\): max_seconds_per_iteration of server_create_destroy is "
                     r"\S+ s, the limit <= 0\.001 s, stopping the run", run.output), run.output[-3000:]
    assert "LEAKED" not in run.output


def test_locust_conf_sets_the_sla(cloud, tmp_path):
    conf = tmp_path / "locust.conf"
    conf.write_text("sla = failure_rate=0, max_avg_duration_per_atomic.delete_server=120\n")
    run = create_destroy(cloud, "--config", str(conf), "-u", "1", "-t", "4s")
    assert run.returncode == 0, run.output[-3000:]
    assert re.search(r"^  max_avg_duration_per_atomic\.delete_server\s+delete_server\s+<= 120 s\s+\S+ s\s+Passed$",
                     run.stdout, re.M), run.stdout[-3000:]


def test_a_bad_sla_is_one_line_and_exit_2(cloud):
    run = create_destroy(cloud, "-t", "5s", "--sla", "failure_rat=1")
    assert run.returncode == 2
    assert "unknown SLA criterion 'failure_rat'" in run.stderr and "Traceback" not in run.output
