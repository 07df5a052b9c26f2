"""Runs the Locust glue cases (watch_cases.py) in their own interpreter.

Locust's gevent patching must come before `ssl` is imported; in one pytest process other
test modules import ssl first, so the glue cases get a fresh interpreter.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_locust_glue_in_its_own_interpreter():
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/logwatch/watch_cases.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stdout[-6000:] + completed.stderr[-2000:]
    last = completed.stdout.strip().splitlines()[-1]
    assert " passed" in last and "skipped" not in last and "failed" not in last, last
