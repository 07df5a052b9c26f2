"""Helpers: a real Locust master and real worker processes on loopback, against the embedded cloud."""
from __future__ import annotations

import re
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

# tests/ is on sys.path (tests/conftest.py): the helpers every Locust test shares
from locust_runs import (FAST, LOCUST, LOCUSTFILE, ROOT, LocustRun, clean_env,  # noqa: F401 (re-exported)
                         cli_credentials, run_locust, servers_named)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Cluster:
    """One master and its workers; outputs go to files so no pipe ever fills up."""

    directory: Path
    port: int
    master: subprocess.Popen | None = None
    workers: list[subprocess.Popen] = field(default_factory=list)
    locustfile: str = LOCUSTFILE      # the master's and every worker's

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        out = open(self.directory / f"{name}.out", "w")
        err = open(self.directory / f"{name}.err", "w")
        return subprocess.Popen([LOCUST, "-f", self.locustfile, *args], cwd=ROOT, env=clean_env(),
                                stdout=out, stderr=err, text=True)

    def start_master(self, args: list[str]) -> None:
        self.master = self._spawn("master", ["--headless", "--master", "--master-bind-host", "127.0.0.1",
                                             "--master-bind-port", str(self.port), *FAST, *args])

    def start_workers(self, count: int) -> None:
        for _ in range(count):
            self.workers.append(self._spawn(f"worker{len(self.workers)}", [
                "--worker", "--master-host", "127.0.0.1", "--master-port", str(self.port)]))

    def output(self, name: str) -> str:
        return (self.directory / f"{name}.out").read_text() + (self.directory / f"{name}.err").read_text()

    def wait(self, timeout: float = 120) -> LocustRun:
        """Wait for the master and every worker to exit; the master's run."""
        deadline = time.monotonic() + timeout
        for process in [self.master, *self.workers]:
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
        return LocustRun(self.master.returncode, (self.directory / "master.out").read_text(),
                         (self.directory / "master.err").read_text())

    def kill_all(self) -> None:
        for process in [self.master, *self.workers]:
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(timeout=10)


def run_id_of(text: str) -> str:
    found = re.search(r"run id (\w+);", text)
    assert found, text[-3000:]
    return found.group(1)
