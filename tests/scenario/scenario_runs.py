"""Helpers for scenario and action runs: the locust-run helpers, and the one leftovers() (cleanup_helpers)."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from cleanup_helpers import leftovers  # noqa: F401 (re-exported)
from locust_runs import LOCUST, ROOT, LocustRun, clean_env, cli_credentials  # noqa: F401 (re-exported)


def guest_port(cloud) -> int:
    return int(cloud.info["guest_ssh_port"])


def admin_options(cloud) -> list[str]:
    admin = cloud.credentials(admin=True)
    return [f"--os-admin-username={admin['username']}", f"--os-admin-password={admin['password']}",
            f"--os-admin-project-name={admin['project_name']}"]


def run_scenario(cloud, scenario: str | Path, *args: str, locustfile: str = "locustfiles/scenario.py",
                 timeout: float = 120, env: dict | None = None) -> LocustRun:
    """A real headless locust run of a scenario file against `cloud` (member credentials)."""
    command = [LOCUST, "-f", locustfile, "--headless", "--status-poll-interval", "0.2",
               f"--guest-ssh-port={guest_port(cloud)}", *cli_credentials(cloud), *admin_options(cloud), *args]
    if scenario:
        command.append(f"--scenario={scenario}")
    completed = subprocess.run(command, cwd=ROOT, env=env or clean_env(), capture_output=True, text=True,
                               timeout=timeout)
    return LocustRun(completed.returncode, completed.stdout, completed.stderr)




def action_rows(run: LocustRun) -> dict[str, tuple[int, int]]:
    """ACTION rows of the final stats table: name -> (runs, failures)."""
    final = run.output.rpartition("Shutting down (exit code")[2]
    return {m.group(1).strip(): (int(m.group(2)), int(m.group(3)))
            for m in re.finditer(r"^ACTION\s+(.+?)\s+(\d+)\s+(\d+)\(", final, re.M)}


@pytest.fixture
def scenario_file(tmp_path):
    def write(text: str, name: str = "scenario.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path
    return write
