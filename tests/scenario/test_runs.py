"""Scenario runs against the embedded cloud: samples, skips, --serial, user counts, unit_test."""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from scenario_runs import ROOT, action_rows, clean_env, leftovers, run_scenario

SAMPLE = Path(__file__).with_name("stress_sample.py")


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "locustfiles" / "etc").iterdir()))
def test_every_shipped_scenario_runs_clean(cloud, name):
    run = run_scenario(cloud, ROOT / "locustfiles" / "etc" / name, "-t", "5s", timeout=150)
    assert run.returncode == 0, run.output[-4000:]
    summary = run.summary()
    assert summary["runs"] > 0 and summary["failed"] == 0
    assert "LEAKED" not in run.stdout and "Traceback" not in run.output
    # isolated projects and users included
    assert leftovers(cloud, f"ns-{run.run_id}-") == {}


def test_without_u_the_scenario_threads_spawn_at_once(cloud, scenario_file):
    path = scenario_file("- action: server_create_destroy\n  threads: 3\n"
                         "- action: volume_create_delete\n  threads: 2\n")
    run = run_scenario(cloud, path, "-t", "4s")
    assert run.returncode == 0, run.output[-3000:]
    spawned = re.search(r"All users spawned: (\{.*?\}) \((\d+) total users\)", run.output)
    assert spawned and spawned.group(2) == "5"
    assert '"ServerCreateDestroy": 3' in spawned.group(1) and '"VolumeCreateDelete": 2' in spawned.group(1)
    assert "Ramping to 5 users at a rate of 5.00" in run.output
    assert sorted(run.summary()["users"]) == ["ServerCreateDestroy-1", "ServerCreateDestroy-2",
                                              "ServerCreateDestroy-3", "VolumeCreateDelete-1",
                                              "VolumeCreateDelete-2"]


def test_entry_with_missing_service_is_skipped_and_the_others_run(cloud, scenario_file):
    path = scenario_file("- action: volume_create_delete\n  threads: 1\n  required_services: [swift]\n"
                         "- action: server_create_destroy\n  threads: 1\n  required_services: [nova, neutron]\n"
                         "- action: volume_attach_delete\n  threads: 1\n  required_services: [cinder]\n")
    run = run_scenario(cloud, path, "-t", "4s")
    assert run.returncode == 0, run.output[-3000:]
    assert "novastress: skipping VolumeCreateDelete (entry 1, volume_create_delete): required service swift " \
           "not in the catalog" in run.stderr
    assert set(action_rows(run)) == {"server_create_destroy", "volume_attach_delete"}


def test_an_entrys_own_sla_judges_its_action_and_the_runs_judges_the_others(cloud, scenario_file, tmp_path):
    path = scenario_file("- action: server_create_destroy\n  threads: 1\n  sla: {max_avg_duration: 0.001}\n"
                         "- action: volume_create_delete\n  threads: 1\n")
    summary = tmp_path / "summary.json"
    run = run_scenario(cloud, path, "-t", "5s", "--sla", "max_avg_duration=120,max_log_errors=0",
                       "--summary-json", str(summary))
    assert run.returncode == 3, run.output[-3000:]
    verdicts = {(v["criterion"], v["subject"]): v["success"]
                for v in json.loads(summary.read_text())["sla"]["verdicts"]}
    assert verdicts == {("max_avg_duration", "server_create_destroy"): False,       # the entry's own
                        ("max_avg_duration", "volume_create_delete"): True,         # --sla's
                        ("max_log_errors", "run"): True}, verdicts


def test_serial_runs_entries_one_after_another_with_their_own_statistics(cloud, scenario_file):
    path = scenario_file("- action: server_create_destroy\n  threads: 2\n"
                         "- action: volume_create_delete\n  threads: 3\n")
    run = run_scenario(cloud, path, "-t", "6s", "--serial")
    assert run.returncode == 0, run.output[-3000:]
    spawns = re.findall(r"All users spawned: (\{.*?\})", run.output)
    assert any('"ServerCreateDestroy": 2' in s and '"VolumeCreateDelete": 0' in s for s in spawns), spawns
    assert any('"ServerCreateDestroy": 0' in s and '"VolumeCreateDelete": 3' in s for s in spawns), spawns
    users = run.summary()["users"]
    assert set(users) == {"ServerCreateDestroy-1", "ServerCreateDestroy-2", "VolumeCreateDelete-1",
                          "VolumeCreateDelete-2", "VolumeCreateDelete-3"}
    rows = action_rows(run)
    # each step's counts are its own: the rows add up per entry, nothing carried over
    assert rows["server_create_destroy"][0] == sum(users[u][0] for u in users if u.startswith("Server"))
    assert rows["volume_create_delete"][0] == sum(users[u][0] for u in users if u.startswith("Volume"))
    assert leftovers(cloud, f"ns-{run.run_id}-") == {}


def test_serial_needs_a_run_time(cloud, scenario_file):
    run = run_scenario(cloud, scenario_file("- action: server_create_destroy\n"), "--serial")
    assert run.returncode == 2
    assert "novastress: --serial splits the run time between the entries: give -t/--run-time" in run.stderr


def test_unit_test_class_setup_per_application_process_action(cloud, scenario_file, tmp_path):
    log = tmp_path / "events"
    entries = "".join(f"- action: unit_test\n  threads: 2\n  kwargs:\n"
                      f"    test_method: {SAMPLE}::{cls}::test_run\n    class_setup_per: {per}\n"
                      for cls, per in (("PerApplication", "application"), ("PerProcess", "process"),
                                       ("PerAction", "action")))
    run = run_scenario(cloud, scenario_file(entries), "--max-runs", "3", "-t", "60s",
                       env=clean_env(NOVASTRESS_SAMPLE_LOG=str(log)))
    assert run.returncode == 0, run.output[-3000:]
    events = Counter(log.read_text().splitlines())
    assert events["run PerApplication"] == events["run PerProcess"] == events["run PerAction"] == 6
    assert (events["setup PerApplication"], events["teardown PerApplication"]) == (1, 1)
    assert (events["setup PerProcess"], events["teardown PerProcess"]) == (2, 2)   # one per user
    assert (events["setup PerAction"], events["teardown PerAction"]) == (6, 6)     # one per run


def test_unit_test_failure_fails_the_action_with_the_assertion(cloud, scenario_file):
    path = scenario_file(f"- action: unit_test\n  threads: 1\n  kwargs: {{test_method: '{SAMPLE}::Failing::test_fails'}}\n")
    run = run_scenario(cloud, path, "--max-runs", "1", "-t", "30s")
    assert run.returncode == 1
    assert "AssertionError: 1 != 2 : the planted failure" in run.output
