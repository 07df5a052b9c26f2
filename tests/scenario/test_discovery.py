"""@stresstest discovery with Tempest's -T (type) and -i (inherited) semantics."""
from __future__ import annotations

from pathlib import Path

from scenario_runs import action_rows, leftovers, run_scenario
from novastress_locust.actions import REGISTRY
from novastress_locust.discovery import discover

SAMPLE = str(Path(__file__).with_name("stress_sample.py"))


def _tests(**options) -> set[str]:
    found = discover([SAMPLE], **options, actions=REGISTRY)
    return {d.name.split("::", 1)[1] for d in found if d.action == "unit_test"}


def test_inherited_methods_need_allow_inheritance_or_call_inherited():
    assert _tests() == {"Base::test_base_only", "Base::test_inherited_allowed", "Child::test_child",
                        "Child::test_inherited_allowed", "test_function"}
    assert _tests(call_inherited=True) == _tests() | {"Child::test_base_only"}


def test_type_filter_keeps_only_matching_tests_and_actions():
    assert _tests(stress_type="smoke") == {"Base::test_inherited_allowed", "Child::test_child",
                                           "Child::test_inherited_allowed"}
    assert _tests(stress_type="slow") == {"Child::test_child", "test_function"}
    volume_actions = {d.name for d in discover([], stress_type="volume", actions=REGISTRY)}
    assert volume_actions == {"volume_create_delete", "volume_attach_delete", "volume_attach_verify"}


def test_all_py_with_a_type_runs_exactly_the_matching_actions(cloud):
    run = run_scenario(cloud, "", "--stress-type=volume", "--max-runs", "1", "-t", "60s",
                       "--default-thread-number-per-action", "1", locustfile="locustfiles/all.py")
    assert run.returncode == 0, run.output[-3000:]
    assert set(action_rows(run)) == {"volume_create_delete", "volume_attach_delete", "volume_attach_verify"}
    assert leftovers(cloud, f"ns-{run.run_id}-") == {}


def test_all_py_runs_discovered_tests_through_unit_test(cloud, tmp_path):
    from scenario_runs import clean_env
    env = clean_env(NOVASTRESS_SAMPLE_LOG=str(tmp_path / "log"))
    run = run_scenario(cloud, "", "--stress-type=slow", f"--stress-module={SAMPLE}", "--max-runs", "1",
                       "-t", "60s", "--default-thread-number-per-action", "1",
                       locustfile="locustfiles/all.py", env=env)
    assert run.returncode == 0, run.output[-3000:]
    assert set(action_rows(run)) == {"unit_test Child.test_child", "unit_test test_function"}


def test_all_py_with_an_unknown_type_says_so():
    from scenario_runs import LOCUST, ROOT, clean_env
    import subprocess
    completed = subprocess.run([LOCUST, "-f", "locustfiles/all.py", "--headless", "--stress-type=nothing"],
                               cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert completed.returncode == 2
    assert completed.stderr.strip() == "novastress: no @stresstest action or test has type 'nothing'"
