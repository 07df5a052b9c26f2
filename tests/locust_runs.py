"""Run real `locust` subprocesses against embedded clouds and look at what they left (shared by the test directories)."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCUST = str(Path(sys.executable).with_name("locust"))
LOCUSTFILE = "locustfiles/create_destroy.py"
# fast status polls against the embedded cloud's fast transitions
FAST = ["--status-poll-interval", "0.2"]


@dataclass
class LocustRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def run_id(self) -> str:
        found = re.search(r"run id (\w+);", self.output)
        assert found, f"no run id in the output:\n{self.output[-3000:]}"
        return found.group(1)

    def summary(self) -> dict:
        """Per-user lines and the totals of Tempest's summary."""
        users = {m.group(1): (int(m.group(3)), int(m.group(4))) for m in re.finditer(
            r"^(\S+) \((\w+)\): Run (\d+) actions \((\d+) failed\)$", self.stdout, re.M)}
        total = re.search(r"^Summary:\nRun (\d+) actions \((\d+) failed\)$", self.stdout, re.M)
        assert total, f"no summary in stdout:\n{self.stdout[-3000:]}"
        return {"users": users, "runs": int(total.group(1)), "failed": int(total.group(2))}

    def totals(self) -> tuple[int, int]:
        """(actions, failed) of Tempest's summary."""
        summary = self.summary()
        return summary["runs"], summary["failed"]

    def stats_row(self, request_type: str, name: str) -> tuple[int, int] | None:
        """(requests, failures) of a row of the final stats table (Locust logs it to stderr)."""
        final = self.output.rpartition("Shutting down (exit code")[2]
        rows = re.findall(rf"^{re.escape(request_type)}\s+{re.escape(name)}\s+(\d+)\s+(\d+)\(",
                          final, re.M)
        return (int(rows[-1][0]), int(rows[-1][1])) if rows else None


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without any OS_* variable, so nothing leaks in by accident."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "NOVASTRESS_", "LOCUST_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_locust(args: list[str], env: dict[str, str] | None = None, timeout: float = 60,
               cwd: Path = ROOT) -> LocustRun:
    completed = subprocess.run([LOCUST, "-f", LOCUSTFILE, "--headless", *args], cwd=cwd,
                               env=env or clean_env(), capture_output=True, text=True, timeout=timeout)
    return LocustRun(completed.returncode, completed.stdout, completed.stderr)


def servers_named(cloud, prefix: str) -> list[dict]:
    """Every server of every project whose name starts with prefix, deleted ones excluded (admin view)."""
    admin = cloud.session(admin=True)
    response = admin.get(f"{cloud.base_url}/compute/v2.1/servers/detail",
                         params={"all_tenants": "1", "name": f"^{re.escape(prefix)}"})
    return [s for s in response.json()["servers"] if s["name"].startswith(prefix)]


def images_named(cloud, prefix: str) -> list[dict]:
    """Every Glance image of every project whose name starts with prefix (admin view)."""
    admin = cloud.session(admin=True)
    response = admin.get(f"{cloud.base_url}/image/v2/images", params={"limit": "1000"})
    return [i for i in response.json()["images"] if (i.get("name") or "").startswith(prefix)]


def chaos(cloud, **rule) -> None:
    """Add a rule to the embedded cloud's fault injection (fakecloud/chaos.py): a status, a delay,
    a reset or a freeze."""
    import requests
    admin = cloud.session(admin=True)
    response = requests.post(f"{cloud.base_url}/fakecloud/chaos", json={"rule": rule},
                             headers={"X-Auth-Token": admin.get_token()}, timeout=10)
    assert response.status_code == 201, response.text


def cli_credentials(cloud, admin: bool = False) -> list[str]:
    creds = cloud.credentials(admin=admin)
    # --opt=value: a generated password may start with "-"
    return [f"--os-auth-url={creds['auth_url']}", f"--os-username={creds['username']}",
            f"--os-password={creds['password']}", f"--os-project-name={creds['project_name']}"]


def signal_after_run_time(command: list[str], env: dict[str, str], delay: float, stop: int = signal.SIGTERM,
                          timeout: float = 240) -> LocustRun:
    """Run `locust` until its -t ends, wait `delay` seconds (the end of the run is at work), send
    `stop` and collect everything it printed (stdout and stderr together)."""
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    for line in process.stdout:
        lines.append(line)
        if "--run-time limit reached, shutting down" in line:
            break
        assert time.monotonic() < deadline, "".join(lines[-50:])
    time.sleep(delay)
    process.send_signal(stop)
    try:
        rest, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError(f"the run did not end within {timeout:g} s of {signal.Signals(stop).name}")
    return LocustRun(process.returncode, "".join(lines) + rest, "")
