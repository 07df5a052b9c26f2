"""The helpers of tests/scenario/scenario_runs.py (one copy serves both directories)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

if "scenario_runs" not in sys.modules:
    _spec = importlib.util.spec_from_file_location(
        "scenario_runs", Path(__file__).resolve().parents[1] / "scenario" / "scenario_runs.py")
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["scenario_runs"] = _module
    _spec.loader.exec_module(_module)

from scenario_runs import scenario_file  # noqa: E402,F401 (a fixture)
