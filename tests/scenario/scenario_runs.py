"""Helpers for scenario and action runs: the locust-run helpers of tests/locust, plus leftover checks."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

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


def leftovers(cloud, prefix: str) -> dict[str, list[str]]:
    """Everything named `prefix*` in any project (admin view): servers, volumes, floating IPs,
    security groups, keypairs of the demo user, projects and users."""
    admin = cloud.session(admin=True)
    member = cloud.session()
    base = cloud.base_url
    found: dict[str, list[str]] = {}
    servers = admin.get(f"{base}/compute/v2.1/servers/detail", params={"all_tenants": "1"}).json()["servers"]
    found["servers"] = [s["name"] for s in servers]
    volumes = admin.get(f"{base}/volume/v3/volumes/detail", params={"all_tenants": "1"}).json()["volumes"]
    found["volumes"] = [v["name"] or "" for v in volumes]
    fips = admin.get(f"{base}/networking/v2.0/floatingips").json()["floatingips"]
    found["floating_ips"] = [f.get("description") or "" for f in fips]
    groups = admin.get(f"{base}/networking/v2.0/security-groups").json()["security_groups"]
    found["security_groups"] = [g["name"] for g in groups]
    keypairs = member.get(f"{base}/compute/v2.1/os-keypairs").json()["keypairs"]
    found["keypairs"] = [k["keypair"]["name"] for k in keypairs]
    found["projects"] = [p["name"] for p in admin.get(f"{base}/identity/v3/projects").json()["projects"]]
    found["users"] = [u["name"] for u in admin.get(f"{base}/identity/v3/users").json()["users"]]
    return {kind: [name for name in names if name.startswith(prefix)] for kind, names in found.items()
            if any(name.startswith(prefix) for name in names)}


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
