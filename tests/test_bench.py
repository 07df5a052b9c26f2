"""Every benchmark runs in its quick mode and ends with a parsable `ratio:` line."""
from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

from run_all import BENCHES, _have  # noqa: E402


@pytest.mark.parametrize("bench", BENCHES, ids=[bench.name for bench in BENCHES])
def test_quick_mode_prints_a_ratio(bench, tmp_path):
    assert not bench.needs or _have(bench.needs), f"{bench.needs} is not installed (scripts/test.sh installs it)"
    output = tmp_path / "results.md"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "run_all.py"), "--quick", "--only", bench.name,
                           "--output", str(output)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = output.read_text()
    # the bench's own last line, kept in the raw output section
    ratios = re.findall(r"^ratio: (\S+)$", report, re.M)
    assert ratios, report[-3000:]
    assert not math.isnan(float(ratios[-1]))
    rows = [line for line in report.splitlines() if line.startswith("| ") and "---" not in line]
    figures = [row for row in rows[1:] if not row.startswith("| `bench/") and not row.startswith("| bench |")]
    assert figures, report[:3000]
    assert all(row.count("|") >= 6 for row in figures), figures
