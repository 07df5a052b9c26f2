"""The embedded cloud: simulated Keystone/Nova/Glance/Cinder/Neutron/Placement on loopback.

    with EmbeddedCloud(log_dir="logs", seed=1) as cloud:
        session = cloud.session()            # a keystoneauth Session for the member user
        print(cloud.auth_url, cloud.log_dir)

    EmbeddedCloud(services="compute,image,network,placement")   # a cloud without Cinder
    EmbeddedCloud(flavors=1, compute_hosts=1, external_network=False)   # nothing to resize to, no floating IPs
    EmbeddedCloud(tenant_network=False)   # the real minimal stack: servers boot with no addresses
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


class EmbeddedCloudError(RuntimeError):
    """The embedded cloud did not start."""


class EmbeddedCloud:
    """Starts `novastress-fakecloud` in a subprocess and reads its address and credentials."""

    def __init__(self, log_dir: str | os.PathLike | None = None, compute_hosts: int = 3,
                 seed: int | None = None, faults: str = "all", delay_scale: float = 1.0,
                 extra_args: list[str] | tuple[str, ...] = (), host: str = "127.0.0.1",
                 port: int = 0, services: str = "all", flavors: int | None = None,
                 external_network: bool = True, tenant_network: bool = True,
                 snapshots_finish: bool = True,
                 max_microversion: str | None = None) -> None:
        self._workdir = tempfile.mkdtemp(prefix="novastress-cloud-")
        self.log_dir = str(Path(log_dir or Path(self._workdir) / "logs").resolve())
        self.args = ["--host", host, "--port", str(port), "--log-dir", self.log_dir,
                     "--compute-hosts", str(compute_hosts), "--faults", faults,
                     "--delay-scale", str(delay_scale), "--services", services, *extra_args]
        if flavors is not None:
            self.args += ["--flavors", str(flavors)]
        if not external_network:
            self.args.append("--no-external-network")
        if not tenant_network:
            self.args.append("--no-tenant-network")
        if not snapshots_finish:
            self.args.append("--snapshots-never-finish")
        if max_microversion:
            self.args += ["--max-microversion", max_microversion]
        if seed is not None:
            self.args += ["--seed", str(seed)]
        self.process: subprocess.Popen | None = None
        self.info: dict = {}

    def start(self, timeout: float = 30.0) -> "EmbeddedCloud":
        ready = Path(self._workdir) / "ready.json"
        stderr = open(Path(self._workdir) / "stderr.log", "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "novastress_locust.fakecloud", "--ready-file", str(ready), *self.args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
            start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready.exists() and ready.stat().st_size:
                self.info = json.loads(ready.read_text())
                ready.unlink()
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        error = (Path(self._workdir) / "stderr.log").read_text(errors="replace").strip()
        raise EmbeddedCloudError(f"the embedded cloud did not start: {error.splitlines()[-1] if error else 'timeout'}")

    @property
    def auth_url(self) -> str:
        return self.info["auth_url"]

    @property
    def base_url(self) -> str:
        return self.info["base_url"]

    def credentials(self, admin: bool = False) -> dict:
        """keystoneauth `password` options for the member (or admin) user."""
        who = self.info["admin" if admin else "member"]
        return {"auth_url": self.auth_url, "username": who["username"], "password": who["password"],
                "project_name": who["project_name"], "user_domain_name": "Default",
                "project_domain_name": "Default"}

    def session(self, admin: bool = False):
        from keystoneauth1 import session as ks_session
        from keystoneauth1.identity import v3
        return ks_session.Session(auth=v3.Password(**self.credentials(admin)))

    def clouds_yaml(self, path: str | os.PathLike) -> Path:
        from .cli import write_private
        import yaml

        def entry(creds: dict) -> dict:
            return {"auth": creds, "region_name": "RegionOne", "interface": "public",
                    "identity_api_version": 3}
        document = {"clouds": {"embedded": entry(self.credentials()),
                               "embedded-admin": entry(self.credentials(admin=True))}}
        write_private(Path(path), yaml.safe_dump(document, sort_keys=False))
        return Path(path)

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> "EmbeddedCloud":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
