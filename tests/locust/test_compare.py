"""`novastress-compare OLD.json NEW.json` on the summary of a real run against the embedded cloud:
the same run is not degraded; a copy whose boots got twice as slow, or whose actions fail, is (exit
1, naming the row); a new kind of invariant violation is marked; a file that is no summary is one
line and exit 2."""
from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from locust_runs import FAST, cli_credentials, run_locust

COMPARE = str(Path(sys.executable).with_name("novastress-compare"))


def compare(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([COMPARE, *args], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def summary(cloud, tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("compare") / "run.json"
    run = run_locust(["-u", "3", "-t", "8s", *FAST, *cli_credentials(cloud), "--summary-json", str(path)], timeout=90)
    assert path.exists(), run.output[-3000:]
    return json.loads(path.read_text())


def written(tmp_path: Path, name: str, document: dict) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return str(path)


def row(document: dict, kind: str, name: str) -> dict:
    return next(entry for entry in document["requests"] if entry["type"] == kind and entry["name"] == name)


def test_a_run_compared_with_itself_is_not_degraded(summary, tmp_path):
    old = written(tmp_path, "old.json", summary)
    result = compare(old, old, "--max-degradation", "10", "--min-runs", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Verdict: not degraded" in result.stdout
    boot = row(summary, "ATOMIC", "boot_server")
    assert boot["requests"] > 0
    assert any(line.startswith("ATOMIC  boot_server") and "+0%" in line for line in result.stdout.splitlines()), \
        result.stdout


def test_slower_boots_degrade_the_new_run(summary, tmp_path):
    slower = copy.deepcopy(summary)
    boot = row(slower, "ATOMIC", "boot_server")
    boot["p95_ms"] = boot["p95_ms"] * 2
    result = compare(written(tmp_path, "old.json", summary), written(tmp_path, "new.json", slower),
                     "--max-degradation", "50", "--min-runs", "1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "DEGRADED: ATOMIC boot_server: p95 +100% (more than 50 %)" in result.stdout
    # the same side by side as a page
    page_path = tmp_path / "compare.html"
    compare(written(tmp_path, "old.json", summary), written(tmp_path, "new.json", slower),
            "--max-degradation", "50", "--min-runs", "1", "--html", str(page_path))
    page = page_path.read_text()
    assert "<td>ATOMIC</td><td>boot_server</td>" in page and "<td>+100%</td>" in page
    assert "DEGRADED: ATOMIC boot_server: p95 +100% (more than 50 %)" in page
    # without a threshold it only reports
    assert compare(written(tmp_path, "old.json", summary), written(tmp_path, "new.json", slower),
                   "--min-runs", "1").returncode == 0


def test_more_failures_and_a_new_violation_kind_are_shown(summary, tmp_path):
    failing = copy.deepcopy(summary)
    action = row(failing, "ACTION", "server_create_destroy")
    action["failures"] = action["requests"]
    failing["violations"] = [{"kind": "placement-allocations-leak", "subject": "x", "detail": "", "request_ids": [],
                              "occurrences": 2}]
    result = compare(written(tmp_path, "old.json", summary), written(tmp_path, "new.json", failing),
                     "--min-runs", "1")
    assert result.returncode == 1, result.stdout
    assert "ACTION server_create_destroy: failure rate 0.0 % -> 100.0 %" in result.stdout
    assert "  placement-allocations-leak: 0 -> 2  (new)" in result.stdout


@pytest.mark.parametrize("content, says", [("not json", "not JSON"), ('{"totals": {}}', "not a novastress summary")])
def test_a_file_that_is_no_summary_is_one_line_and_exit_2(tmp_path, content, says):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    result = compare(str(bad), str(bad))
    assert result.returncode == 2
    assert result.stderr.startswith("novastress-compare: ") and says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    missing = compare(str(tmp_path / "none.json"), str(bad))
    assert missing.returncode == 2 and "cannot read it" in missing.stderr
