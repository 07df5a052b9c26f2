"""Input-side faults: one clear line each, exit code 2, no load started."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from fault_helpers import LOCUST, ROOT, clean_env, credentials_args, leftovers

LOCUSTFILE = str(ROOT / "locustfiles" / "create_destroy.py")


def _run(cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([LOCUST, "-f", LOCUSTFILE, "--headless", "-t", "20s", *args], cwd=cwd,
                          env=env or clean_env(HOME=str(cwd)), capture_output=True, text=True, timeout=60)


def _our_lines(completed: subprocess.CompletedProcess) -> list[str]:
    """stderr without Locust's own start-up log line."""
    return [line for line in completed.stderr.splitlines()
            if line.strip() and "locust.main: Starting Locust" not in line]


def _assert_refused(completed, expected: str) -> None:
    lines = _our_lines(completed)
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert expected in lines[0], lines
    assert len(lines) == 1 or (lines[1].startswith("Did you mean") and len(lines) == 2), lines
    assert "Traceback" not in completed.stderr
    assert "Ramping to" not in completed.stderr and "Summary:" not in completed.stdout


def test_malformed_locust_conf(cloud, tmp_path):
    (tmp_path / "locust.conf").write_text("headless = true\nusers = 2\nthis is not valid [[[\n")
    completed = _run(tmp_path, *credentials_args(cloud), "--run-id", "badconf")
    _assert_refused(completed, "locust.conf line 3: 'this is not valid [[[' is not 'option = value'")
    assert leftovers(cloud, "ns-badconf-") == {}


def test_malformed_config_given_with_dash_dash_config(cloud, tmp_path):
    (tmp_path / "stress.conf").write_text("run-time = 5s\n= 3\n")
    completed = _run(tmp_path, "--config", "stress.conf", *credentials_args(cloud))
    # configargparse itself refuses this one, in one line of its own
    _assert_refused(completed, "stress.conf")
    assert "= 3" in _our_lines(completed)[0]


def test_unknown_option(cloud, tmp_path):
    completed = _run(tmp_path, *credentials_args(cloud), "--no-such-option", "1")
    _assert_refused(completed, "unrecognized arguments: --no-such-option")


def test_malformed_clouds_yaml(tmp_path):
    (tmp_path / "clouds.yaml").write_text("clouds:\n  mine: [unclosed\n")
    completed = _run(tmp_path, "--os-cloud", "mine")
    _assert_refused(completed, f"cannot read {tmp_path / 'clouds.yaml'}")


def test_malformed_tempest_conf(tmp_path):
    (tmp_path / "tempest.conf").write_text("[auth\nadmin_username = admin\n")
    completed = _run(tmp_path, "--tempest-conf", "tempest.conf")
    _assert_refused(completed, "cannot read --tempest-conf tempest.conf: File contains no section headers")


def test_malformed_scenario_file(cloud, tmp_path):
    scenario = ROOT / "locustfiles" / "scenario.py"
    (tmp_path / "bad.json").write_text('[{"action": "x", "threads": 2,,}]')
    completed = subprocess.run([LOCUST, "-f", str(scenario), "--headless", "-t", "20s", "--scenario", "bad.json",
                                *credentials_args(cloud)], cwd=tmp_path, env=clean_env(HOME=str(tmp_path)),
                               capture_output=True, text=True, timeout=60)
    _assert_refused(completed, "bad.json")


@pytest.mark.parametrize("args, expected", [
    (["--storm-actions", "reboot,shelve"], "--storm-actions: unknown action reboot (known: soft_reboot, "),
    (["--storm-plan-ratio", "1.5"], "--storm-plan-ratio 1.5: a fraction of rounds, between 0 and 1"),
    (["--storm-delete-ratio", "-0.1"], "--storm-delete-ratio -0.1: a fraction of rounds, between 0 and 1"),
])
def test_bad_storm_options(cloud, tmp_path, args, expected):
    storm = ROOT / "locustfiles" / "storm.py"
    completed = subprocess.run([LOCUST, "-f", str(storm), "--headless", "-t", "20s", *args, "--run-id", "badstorm",
                                *credentials_args(cloud)], cwd=tmp_path, env=clean_env(HOME=str(tmp_path)),
                               capture_output=True, text=True, timeout=60)
    _assert_refused(completed, expected)
    assert leftovers(cloud, "ns-badstorm-") == {}


@pytest.mark.parametrize("case", ["missing", "open", "directory"])
def test_bad_private_key_of_the_log_watcher(cloud, tmp_path, case):
    key = tmp_path / "id_ed25519"
    if case == "open":
        key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-real-key\n-----END OPENSSH PRIVATE KEY-----\n")
        key.chmod(0o644)
        expected = "is accessible by others (mode 0644); ssh refuses such keys: run chmod 600"
    elif case == "directory":
        key.mkdir()
        expected = "is not a file"
    else:
        expected = "does not exist; fix the path"
    completed = _run(tmp_path, *credentials_args(cloud), "--run-id", f"key{case}",
                     "--target-private-key-path", str(key), "--target-logfiles", "/var/log/nova/*.log")
    _assert_refused(completed, f"--target-private-key-path {key} {expected}")
    assert "not-a-real-key" not in completed.stdout + completed.stderr
    assert leftovers(cloud, f"ns-key{case}-") == {}
