"""Fixtures of the scenario tests (helpers in scenario_runs.py, shared with tests/actions)."""
from scenario_runs import scenario_file  # noqa: F401 (a fixture)
