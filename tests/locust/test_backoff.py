"""Back-off: an action failing the same way again and again waits longer and longer (per user)."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

from locust_runs import FAST, LOCUST, ROOT, LocustRun, clean_env, cli_credentials

SAME_FAILURE = str(Path(__file__).resolve().parent / "locustfiles" / "same_failure.py")


def same_failure(cloud, *args: str) -> LocustRun:
    completed = subprocess.run([LOCUST, "-f", SAME_FAILURE, "--headless", "-t", "5s", "-u", "2", *FAST,
                                *cli_credentials(cloud), *args], cwd=ROOT, env=clean_env(),
                               capture_output=True, text=True, timeout=90)
    return LocustRun(completed.returncode, completed.stdout, completed.stderr)


def test_the_same_failure_again_and_again_backs_off_and_the_summary_says_how_often(cloud):
    hammering = same_failure(cloud, "--backoff-cap", "0")
    backing_off = same_failure(cloud)
    for run in (hammering, backing_off):
        assert run.returncode == 1, run.output[-3000:]     # every run failed: a failed test
        assert "Traceback" not in run.output, run.output[-3000:]
    runs_without, failed_without = hammering.totals()
    runs_with, failed_with = backing_off.totals()
    assert failed_without == runs_without and failed_with == runs_with
    # 3 quick failures per user, then waits of 1, 2, 4 s: a handful of runs against hundreds
    assert 6 <= runs_with and runs_with * 20 < runs_without, (runs_with, runs_without)
    assert "backed off" not in hammering.stdout
    backed_off = re.findall(r"^show_missing_server backed off (\d+) times \(same failure 3\+ times in a row\)$",
                            backing_off.stdout, re.M)
    # once per failure from the third on: every run of each user but its first two
    assert backed_off and int(backed_off[0]) == runs_with - 4, backing_off.stdout[-2000:]
