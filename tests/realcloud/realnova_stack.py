"""Helpers of the real-cloud tier: a real Nova 34 (`novastress-realnova`) on loopback, driven through the
same entry points a user runs (`locust -f ...`, `novastress-cleanup`).

    stack = realnova(Shape(flavors=1, compute_hosts=1))   # `novastress-realnova up` in that shape
    run = stack.locust("locustfiles/create_destroy.py", "-t", "20s")
    assert stack.leftovers(run.run_id) == {}

The stack lives in $NOVASTRESS_REALNOVA_DIR (default: novastress-realnova's own default). When
it cannot be started the tier fails with the reason; it never skips. A stack this session
started is stopped at the end; one that was already running is left running.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import yaml
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

from novastress_locust.realnova import Shape
from novastress_locust.realnova.cli import default_dir

from leftover import leftovers as shared_leftovers
from locust_runs import LOCUST, ROOT, LocustRun, clean_env

BIN = Path(sys.executable).parent
STATE_DIR = Path(os.environ.get("NOVASTRESS_REALNOVA_DIR") or default_dir())
COMPUTE = {"service_type": "compute", "interface": "public"}
VOLUME = {"service_type": "block-storage", "interface": "public"}


def realnova_command(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "novastress-realnova"), "--dir", str(STATE_DIR), *args],
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@dataclass
class RealNova:
    """A running real-Nova stack in one shape, and ways to look at it."""

    root: Path
    shape: Shape
    clouds_file: Path | None = None          # another clouds.yaml (see through_auth_url)

    @property
    def clouds_yaml(self) -> Path:
        return self.clouds_file or self.root / "clouds.yaml"

    def through_auth_url(self, auth_url: str, clouds_file: Path) -> "RealNova":
        """The same stack, its clouds reaching Keystone at `auth_url` (a proxy in front of it)."""
        clouds = yaml.safe_load((self.root / "clouds.yaml").read_text())
        for cloud in clouds["clouds"].values():
            cloud["auth"]["auth_url"] = auth_url
        clouds_file.write_text(yaml.safe_dump(clouds))
        return replace(self, clouds_file=clouds_file)

    @contextmanager
    def frozen(self, daemon: str):
        """The daemon (e.g. nova-scheduler) and its workers stopped with SIGSTOP for the block,
        continued with SIGCONT after it, whatever happens inside."""
        pid = int((self.root / "run" / f"{daemon}.daemon.pid").read_text().split()[0])
        os.killpg(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.killpg(pid, signal.SIGCONT)

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    def env(self, **extra: str) -> dict[str, str]:
        return clean_env(OS_CLIENT_CONFIG_FILE=str(self.clouds_yaml), **extra)

    def session(self, admin: bool = False) -> ks_session.Session:
        # straight to Keystone, whatever clouds.yaml the runs use
        clouds = yaml.safe_load((self.root / "clouds.yaml").read_text())["clouds"]
        cloud = clouds["realnova-admin" if admin else "realnova"]
        return ks_session.Session(auth=v3.Password(**cloud["auth"]))

    def admin_options(self) -> list[str]:
        """--os-admin-* of the stack's admin (the storm's peer user, isolated tenants, admin checks)."""
        auth = yaml.safe_load((self.root / "clouds.yaml").read_text())["clouds"]["realnova-admin"]["auth"]
        return [f"--os-admin-username={auth['username']}", f"--os-admin-password={auth['password']}",
                f"--os-admin-project-name={auth['project_name']}"]

    def locust(self, locustfile: str, *args: str, cloud: str = "realnova", timeout: float = 240) -> LocustRun:
        completed = subprocess.run([LOCUST, "-f", locustfile, "--headless", "--os-cloud", cloud, *args],
                                   cwd=ROOT, env=self.env(), capture_output=True, text=True, timeout=timeout)
        return LocustRun(completed.returncode, completed.stdout, completed.stderr)

    def start_locust(self, locustfile: str, *args: str, cloud: str = "realnova") -> subprocess.Popen:
        return subprocess.Popen([LOCUST, "-f", locustfile, "--headless", "--os-cloud", cloud, *args],
                                cwd=ROOT, env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    def cleanup(self, *args: str, cloud: str = "realnova-admin") -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "novastress-cleanup"), "--os-cloud", cloud, *args], cwd=ROOT,
                              env=self.env(), capture_output=True, text=True, timeout=300)

    def leftovers(self, marker: str) -> dict[str, list[str]]:
        """Everything of any project whose name contains `marker` (a run id), by kind; {} when clean."""
        return shared_leftovers(self.session(admin=True), self.session(), lambda name: marker in name)

    def residue(self) -> str:
        """What a clean cloud has none of: servers of any project, anything named ns-*, usage of
        the demo project; '' when clean."""
        servers = self.session(admin=True).get("/servers", endpoint_filter=COMPUTE,
                                               params={"all_tenants": "1"}).json()["servers"]
        found = {**({"servers": [s["name"] for s in servers]} if servers else {}), **self.leftovers("ns-")}
        usage = self.project_usage(settle=0)
        return "; ".join([*(f"{kind}: {', '.join(names[:5])}" for kind, names in found.items()),
                          *([f"demo's placement usage {usage}"] if usage else [])])

    def force_delete_servers(self, marker: str, timeout: float = 90) -> list[str]:
        """Servers named with `marker` that Nova itself left undeletable (a stuck task state):
        reset to ERROR and deleted as admin, so the next test starts clean; their names."""
        admin = self.session(admin=True)
        stuck = [s for s in admin.get("/servers", endpoint_filter=COMPUTE,
                                      params={"all_tenants": "1"}).json()["servers"] if marker in s["name"]]
        for server in stuck:
            admin.post(f"/servers/{server['id']}/action", endpoint_filter=COMPUTE,
                       json={"os-resetState": {"state": "error"}}, raise_exc=False)
            admin.delete(f"/servers/{server['id']}", endpoint_filter=COMPUTE, raise_exc=False)
        deadline = time.monotonic() + timeout
        while stuck and time.monotonic() < deadline and any(
                admin.get(f"/servers/{s['id']}", endpoint_filter=COMPUTE, raise_exc=False).status_code != 404
                for s in stuck):
            time.sleep(1)
        return [server["name"] for server in stuck]

    def heal_migration_leaks(self, project_name: str = "demo") -> dict[str, str]:
        """Nova's own leak, removed as an operator would (DELETE /allocations/{consumer}): a server
        deleted mid-resize leaves its migration's allocations on the source host, and nova-compute
        only logs "has allocations against this compute host but is not found in the database".
        Only consumers the compute logs name as a migration of a server that is gone are removed;
        migration -> server of each."""
        admin = self.session(admin=True)
        placement = {"endpoint_filter": {"service_type": "placement"},
                     "headers": {"OpenStack-API-Version": "placement 1.28"}}
        migrations: dict[str, str] = {}
        for log in self.log_dir.glob("nova-compute-*.log"):
            for server, migration in re.findall(r"\[instance: ([0-9a-f-]{36})\] Updating resource usage from "
                                                r"migration ([0-9a-f-]{36})", log.read_text()):
                migrations[migration] = server
        project = self._project_id(admin, project_name)
        healed: dict[str, str] = {}
        for provider in admin.get("/resource_providers", **placement).json()["resource_providers"]:
            held = admin.get(f"/resource_providers/{provider['uuid']}/allocations", **placement).json()
            for consumer in held["allocations"]:
                server = migrations.get(consumer)
                if server is None or admin.get(f"/servers/{server}", endpoint_filter=COMPUTE,
                                               raise_exc=False).status_code != 404:
                    continue
                if admin.get(f"/allocations/{consumer}", **placement).json().get("project_id") == project:
                    admin.delete(f"/allocations/{consumer}", **placement)
                    healed[consumer] = server
        return healed

    def quotas(self, project_name: str = "demo") -> dict:
        """The project's compute quota set (what a quota step must restore)."""
        admin = self.session(admin=True)
        project = self._project_id(admin, project_name)
        return admin.get(f"/os-quota-sets/{project}", endpoint_filter=COMPUTE).json()["quota_set"]

    @staticmethod
    def _project_id(admin, project_name: str) -> str:
        identity = {"service_type": "identity", "interface": "public"}
        return admin.get("/projects", endpoint_filter=identity, params={"name": project_name}).json()["projects"][0]["id"]

    def project_usage(self, project_name: str = "demo", settle: float = 90) -> dict:
        """Placement usages of a project, once they are gone or `settle` seconds have passed: deletes
        free them asynchronously, and allocations a race left behind (a server deleted while its
        resize moved them) are healed by nova-compute's periodic task, which runs every 60 s."""
        admin = self.session(admin=True)
        project = self._project_id(admin, project_name)
        deadline = time.monotonic() + settle
        while True:
            usages = admin.get("/usages", endpoint_filter={"service_type": "placement"},
                               params={"project_id": project},
                               headers={"OpenStack-API-Version": "placement 1.9"}).json()["usages"]
            if not any(usages.values()) or time.monotonic() > deadline:
                return {kind: used for kind, used in usages.items() if used}
            time.sleep(1)


class Stacks:
    """Brings the stack up in the shape each test module asks for."""

    def __init__(self) -> None:
        self.was_running = realnova_command("status", timeout=60).returncode == 0
        self.current: Shape | None = None

    def up(self, shape: Shape) -> RealNova:
        first = self.current is None
        if shape != self.current:
            # a stack this session starts starts clean; one that runs already is checked below
            fresh = ["--fresh"] if first and not self.was_running else []
            completed = realnova_command("up", *fresh, "--flavors", str(shape.flavors),
                                         "--compute-hosts", str(shape.compute_hosts),
                                         "--with-cinder" if shape.cinder else "--without-cinder")
            if completed.returncode != 0:
                reason = (completed.stderr.strip() or completed.stdout.strip()).splitlines()[-1:]
                pytest.fail(f"the real Nova could not be started: {' '.join(reason) or 'no output'} "
                            f"(novastress-realnova --dir {STATE_DIR} up)", pytrace=False)
            self.current = shape
        stack = RealNova(STATE_DIR, shape)
        if first:
            residue = stack.residue()
            if residue:
                pytest.fail(f"the real Nova holds what earlier runs left ({residue}); every test here expects "
                            f"a clean cloud: novastress-realnova --dir {STATE_DIR} up --fresh", pytrace=False)
        return stack


# what a failure the cloud is to blame for looks like: a 5xx answer, a server the cloud put in
# ERROR, a logged error record, an invariant the cloud broke, Nova counting one of its own
# compute services down (409 "Service is unavailable": a loaded host missed its heartbeats)
CLOUDS_FAULT = re.compile(r"-> 5\d\d\b|went to ERROR|^(LOG|INVARIANT)\s|-> 409 Service is unavailable")


def failure_rows(run: LocustRun) -> list[str]:
    """The rows of Locust's final error report: `<count> <type> <name>: <error>`."""
    if "Error report" not in run.output:      # no failure at all: Locust prints no report
        return []
    report = run.output.rpartition("Error report")[2]
    # the rows stand between the table's two `------------------|-----` rules
    rules = [n for n, line in enumerate(report.splitlines()) if re.match(r"^\s*-{18}\|-", line)]
    table = report.splitlines()[rules[0] + 1:rules[1]] if len(rules) >= 2 else []
    return [line.strip() for line in table if re.match(r"^\d+\s+\S+\s", line.strip())]


def tools_own_failures(run: LocustRun) -> list[str]:
    """Failures that are not the cloud's: the tool's own mistakes about the cloud's shape."""
    return [row for row in failure_rows(run)
            if not CLOUDS_FAULT.search(re.sub(r"^\d+\s+", "", row))]
