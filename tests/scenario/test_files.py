"""Scenario files: Tempest's JSON unchanged, YAML, and one clear line for every mistake."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from scenario_runs import LOCUST, ROOT, clean_env
from novastress_locust.scenario import ScenarioError, load, load_faults

SCENARIOS = ROOT / "locustfiles" / "etc"
TEMPEST_SERVER_CREATE_DESTROY = (
    '[{"action": "tempest.stress.actions.server_create_destroy.ServerCreateDestroyTest",\n'
    '  "threads": 8,\n  "use_admin": true,\n  "use_isolated_tenants": true,\n  "kwargs": {}\n  }\n]\n')


def test_tempest_sample_is_shipped_byte_for_byte_and_maps_to_our_action():
    path = SCENARIOS / "server-create-destroy-test.json"
    assert path.read_text() == TEMPEST_SERVER_CREATE_DESTROY
    [entry] = load(path)
    assert (entry.spec.name, entry.threads, entry.use_admin, entry.use_isolated_tenants, entry.kwargs) == \
        ("server_create_destroy", 8, True, True, {})


@pytest.mark.parametrize("name", sorted(p.name for p in SCENARIOS.iterdir()))
def test_every_shipped_scenario_loads(name):
    entries = load(SCENARIOS / name)
    assert entries and all(e.spec.task is not None for e in entries)


def test_yaml_forms_equal_their_json():
    for json_name, yaml_name in (("server-create-destroy-test.json", "server-create-destroy-test.yaml"),
                                 ("stress-tox-job.json", "gate-mix.yaml")):
        from_json = [(e.spec.name, e.threads, e.use_admin, e.use_isolated_tenants, e.required_services)
                     for e in load(SCENARIOS / json_name)]
        from_yaml = [(e.spec.name, e.threads, e.use_admin, e.use_isolated_tenants, e.required_services)
                     for e in load(SCENARIOS / yaml_name)]
        assert from_json == from_yaml


@pytest.mark.parametrize("text, suffix, expected", [
    ('[{"action": "server_create_destroy",}]', ".json", "not valid JSON at line 1"),
    ("- action: [unclosed\n", ".yaml", "not valid YAML at line"),
    ("{}", ".json", "must be a non-empty list"),
    ('[{"action": "tempest.stress.actions.nope.Nope"}]', ".json", "entry 1: unknown action"),
    ('[{"action": "server_create_destroy", "threads": "8"}]', ".json", "'threads' must be a positive integer"),
    ('[{"action": "server_create_destroy", "use_admin": "yes"}]', ".json", "'use_admin' must be true or false"),
    ('[{"action": "server_create_destroy", "thread": 8}]', ".json", "unknown key 'thread'"),
    ("- action: volume_create_delete\n- action: ssh_floating\n  kwargs: {new_floatin: true}\n", ".yaml",
     "entry 2 (ssh_floating): unknown kwarg 'new_floatin'"),
    ("- action: ssh_floating\n  kwargs: {check_timeout: soon}\n", ".yaml", "kwarg 'check_timeout' must be a number"),
    ("- action: ssh_floating\n  kwargs: {verify: [check_telnet]}\n", ".yaml", "unknown check 'check_telnet'"),
    ("- action: unit_test\n  kwargs: {class_setup_per: process}\n", ".yaml", "kwarg 'test_method' is required"),
    ("- action: unit_test\n  kwargs: {test_method: no.such.module.Test.test_x}\n", ".yaml",
     "kwarg 'test_method': no importable module"),
    ("- action: boot_and_bounce\n  kwargs: {actions: [reboot_twice]}\n", ".yaml", "unknown bounce 'reboot_twice'"),
    ("- action: server_create_destroy\n  sla: {failure_rat: 1}\n", ".yaml",
     "entry 1 (server_create_destroy): 'sla': unknown SLA criterion 'failure_rat'"),
    ("- action: server_create_destroy\n  sla: {max_log_errors: 0}\n", ".yaml",
     "max_log_errors is judged on the whole run: give it with --sla"),
    ("- action: server_create_destroy\n  sla: {failure_rate: 1}\n- action: server_create_destroy\n"
     "  sla: {failure_rate: 2}\n", ".yaml", "entries 1 and 2 run server_create_destroy with different 'sla'"),
    ("{entries: [{action: server_create_destroy}], fault: []}\n", ".yaml", "unknown key 'fault'"),
])
def test_mistakes_are_one_line_naming_file_and_entry(tmp_path, text, suffix, expected):
    path = tmp_path / f"bad{suffix}"
    path.write_text(text)
    with pytest.raises(ScenarioError) as raised:
        load(path)
    message = str(raised.value)
    assert message.startswith(str(path)) and expected in message and "\n" not in message


def test_bad_scenario_exits_2_before_any_load(tmp_path):
    path = tmp_path / "typo.json"
    path.write_text(json.dumps([{"action": "server_create_destroy"}, {"action": "volume_create_destory"}]))
    completed = subprocess.run([LOCUST, "-f", "locustfiles/scenario.py", "--headless", "-t", "5s",
                                f"--scenario={path}"], cwd=ROOT, env=clean_env(), capture_output=True,
                               text=True, timeout=60)
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    assert completed.returncode == 2
    assert lines == [f"novastress: {path}: entry 2: unknown action 'volume_create_destory'; use one of "
                     + lines[0].split("use one of ", 1)[1]], completed.stderr
    assert "embedded cloud" not in completed.stdout + completed.stderr
    assert "Traceback" not in completed.stderr


def test_missing_scenario_option_is_one_line():
    completed = subprocess.run([LOCUST, "-f", "locustfiles/scenario.py", "--headless"], cwd=ROOT,
                               env=clean_env(), capture_output=True, text=True, timeout=60)
    assert completed.returncode == 2 and "add --scenario FILE" in completed.stderr
    assert len([line for line in completed.stderr.splitlines() if line.strip()]) == 1


@pytest.mark.parametrize("faults, expected", [
    ("at=3s action=restart", "fault 1: --fault 'at=3s action=restart': service=?"),
    ("[at=3s action=restart service=nova-api, {at: 5s, action: melt, service: nova-api}]",
     "fault 2: --fault 'at=5s action=melt service=nova-api': action=melt"),
    ("[[at=3s]]", "fault 1: write it as 'at=30s action=restart"),
])
def test_a_scenarios_wrong_fault_is_one_line_naming_file_and_fault(tmp_path, faults, expected):
    path = tmp_path / "faulty.yaml"
    path.write_text(f"entries: [{{action: server_create_destroy}}]\nfaults: {faults}\n")
    with pytest.raises(ScenarioError) as raised:
        load_faults(path)
    message = str(raised.value)
    assert message.startswith(str(path)) and expected in message and "\n" not in message, message


def test_a_scenarios_faults_are_texts_or_mappings(tmp_path):
    path = tmp_path / "faults.yaml"
    path.write_text("entries: [{action: server_create_destroy}]\n"
                    "faults:\n  - at=3s action=restart service=nova-api\n"
                    "  - {after: 4, action: freeze, service: nova-conductor, for: 2s}\n")
    assert load_faults(path) == ["at=3s action=restart service=nova-api",
                                 "after=4 action=freeze service=nova-conductor for=2s"]
    assert [entry.spec.name for entry in load(path)] == ["server_create_destroy"]
