"""Every action against the embedded cloud: short real locust runs, nothing left behind."""
from __future__ import annotations

import re

import pytest

from scenario_runs import action_rows, leftovers, run_scenario
from novastress_locust.actions import REGISTRY
from novastress_locust.actions.lifecycle import BOUNCES

API_ACTIONS = ["server_create_destroy", "volume_create_delete", "volume_attach_delete", *BOUNCES]
GUEST_ACTIONS = ["ssh_floating", "volume_attach_verify"]


def _one_each(names: list[str], kwargs: dict[str, str] | None = None) -> str:
    kwargs = kwargs or {}
    return "".join(f"- action: {name}\n  threads: 1\n" + (f"  kwargs: {kwargs[name]}\n" if name in kwargs else "")
                   for name in names)


def _check_clean_success(cloud, run, names: list[str]) -> None:
    rows = action_rows(run)
    assert run.returncode == 0, run.output[-4000:]
    for name in names:
        assert rows.get(name, (0, 0))[0] >= 1 and rows[name][1] == 0, (name, rows, run.output[-3000:])
    assert "LEAKED" not in run.stdout and "Traceback" not in run.output
    assert leftovers(cloud, f"ns-{run.run_id}-") == {}


def test_api_actions_succeed_and_leave_nothing(cloud, scenario_file):
    names = API_ACTIONS + ["boot_and_bounce"]
    path = scenario_file(_one_each(names, {"boot_and_bounce": "{actions: [hard_reboot, {lock_unlock: 2}]}",
                                           "soft_reboot": "{new_server: true}"}))
    run = run_scenario(cloud, path, "--max-runs", "2", "-t", "90s", timeout=150)
    _check_clean_success(cloud, run, names)
    # a kept server: each lifecycle user booted once for its two runs (new_server: false)
    final = run.output.rpartition("Shutting down (exit code")[2]
    assert re.search(r"^ATOMIC\s+resize\s+\d+\s+0\(", final, re.M)
    assert re.search(r"^ATOMIC\s+attach_volume\s+\d+\s+0\(", final, re.M)


def test_guest_actions_reach_the_guest_over_ssh(cloud, scenario_file):
    path = scenario_file(_one_each(GUEST_ACTIONS, {
        "ssh_floating": "{verify: [check_port_ssh, check_icmp_echo], check_timeout: 30, reboot: true}",
        "volume_attach_verify": "{ssh_test_before_attach: true}"}))
    run = run_scenario(cloud, path, "--max-runs", "2", "-t", "90s", timeout=150)
    _check_clean_success(cloud, run, GUEST_ACTIONS)
    final = run.output.rpartition("Shutting down (exit code")[2]
    for step in ("check_port_ssh", "verify_attach", "verify_detach", "verify_before_attach", "ssh_connect"):
        assert re.search(rf"^ATOMIC\s+{step}\s+\d+\s+0\(", final, re.M), (step, final[-3000:])


def test_attach_verify_fails_with_a_clear_reason_when_the_guest_disagrees(cloud, scenario_file):
    # the guest shows vda + the volume: asking for 3 matching lines must fail, naming what it saw
    path = scenario_file(_one_each(["volume_attach_verify"], {"volume_attach_verify": "{attach_match_count: 3}"}))
    run = run_scenario(cloud, path, "--max-runs", "1", "-t", "60s", "--build-timeout", "2", timeout=120)
    assert run.returncode == 1
    assert re.search(r"never had 3 lines matching '\.\*vd\.\*' after 2 s \(disks: vda, vd[b-z]\)", run.output), \
        run.output[-3000:]
    assert leftovers(cloud, f"ns-{run.run_id}-") == {}


def test_ssh_floating_fails_clearly_when_nothing_answers(cloud, scenario_file):
    # a port no guest listens on: the TCP check must fail with the address and port
    path = scenario_file(_one_each(["ssh_floating"], {"ssh_floating": "{verify: [check_port_ssh], check_timeout: 1}"}))
    run = run_scenario(cloud, path, "--max-runs", "1", "-t", "60s", "--guest-ssh-port=9", timeout=120)
    assert run.returncode == 1
    assert re.search(r"cannot connect to the SSH port 127\.\d+\.\d+\.\d+:9 after 1 s", run.output), run.output[-3000:]
    assert leftovers(cloud, f"ns-{run.run_id}-") == {}


def test_every_registered_action_is_covered():
    covered = set(API_ACTIONS) | set(GUEST_ACTIONS) | {"boot_and_bounce", "unit_test"}
    families = ("servers", "volumes", "floating", "lifecycle", "unit_test")
    assert {name for name, spec in REGISTRY.items()
            if spec.task.__module__.rpartition(".")[2] in families} == covered
