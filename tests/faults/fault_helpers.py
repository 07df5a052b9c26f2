"""Headless `locust` runs against an embedded cloud, with faults injected through its control API."""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import requests

from cleanup_helpers import ROOT, Api, clean_env, credentials_args, leftovers, run_cleanup  # noqa: E402,F401
from locust_runs import LocustRun  # noqa: E402,F401
from waiting import wait_until

LOCUST = str(Path(sys.executable).with_name("locust"))
CREATE_DESTROY = "locustfiles/create_destroy.py"
SERVER_FLOATING_IP = str(Path(__file__).resolve().parent / "locustfiles" / "server_floating_ip.py")
FAST = ["--status-poll-interval", "0.2"]
QUIET_CLOUD = dict(faults="none", delay_scale=0.1, seed=11)


def locust_args(cloud, locustfile: str, *args: str) -> list[str]:
    return [LOCUST, "-f", locustfile, "--headless", *FAST, *credentials_args(cloud), *args]


def run_locust(cloud, *args: str, locustfile: str = CREATE_DESTROY, timeout: float = 120) -> LocustRun:
    completed = subprocess.run(locust_args(cloud, locustfile, *args), cwd=ROOT, env=clean_env(),
                               capture_output=True, text=True, timeout=timeout)
    return LocustRun(completed.returncode, completed.stdout, completed.stderr)


def start_locust(cloud, *args: str, locustfile: str = CREATE_DESTROY) -> subprocess.Popen:
    return subprocess.Popen(locust_args(cloud, locustfile, *args), cwd=ROOT, env=clean_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen, sig: int | None = None, timeout: float = 90) -> LocustRun:
    if sig is not None:
        process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=timeout)
    return LocustRun(process.returncode, stdout, stderr)


def wait_for_servers(cloud, pattern: str, timeout: float = 40) -> list[str]:
    """Names of live servers matching pattern, once there is at least one."""
    return wait_until(lambda: leftovers(cloud, pattern).get("servers", []), f"a server named {pattern}*",
                      timeout, interval=0.2)


def control(cloud, method: str, path: str, body: dict | None = None) -> requests.Response:
    admin = cloud.session(admin=True)
    return requests.request(method, f"{cloud.base_url}/fakecloud{path}", json=body,
                            headers={"X-Auth-Token": admin.get_token()}, timeout=10)


def chaos(cloud, **rule) -> dict:
    response = control(cloud, "POST", "/chaos", {"rule": rule})
    assert response.status_code == 201, response.text
    return response.json()["rule"]


__all__ = ["Api", "LocustRun", "run_locust", "start_locust", "finish", "chaos", "control", "leftovers",
           "run_cleanup", "wait_for_servers", "signal"]
