"""Service log files in oslo.log's default format, as a real Nova 34 writes them.

    2026-11-28 05:30:27.086 19859 INFO nova.api.openstack.requestlog [None req-… <user> <project> - - default default] …

Tracebacks get `logging_exception_prefix` on every line and end with a
prefix-only line, exactly as oslo.log does, so that a log parser tested here
parses a real cloud's logs too.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LogContext:
    """What oslo.log prints in the context bracket."""

    request_id: str
    global_request_id: str | None = None
    user_id: str | None = None
    project_id: str | None = None

    def bracket(self) -> str:
        user = self.user_id or "-"
        project = self.project_id or "-"
        tail = "- - default default" if self.user_id else "- - - -"
        return f"[{self.global_request_id or 'None'} {self.request_id} {user} {project} {tail}]"


def timestamp(now: float | None = None) -> str:
    now = time.time() if now is None else now
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}"


class ServiceLog:
    """One log file of one service process (its own pid, like a forked worker)."""

    def __init__(self, path: Path, pid: int) -> None:
        self.path = Path(path)
        self.pid = pid
        self._file = open(self.path, "a", buffering=1, encoding="utf-8")

    def write(self, level: str, logger: str, message: str, context: LogContext | None = None,
              instance: str | None = None, traceback: list[str] | None = None,
              now: float | None = None) -> None:
        stamp = timestamp(now)
        bracket = context.bracket() if context else "[-]"
        inst = f"[instance: {instance}] " if instance else ""
        lines = [f"{stamp} {self.pid} {level} {logger} {bracket} {inst}{message}"]
        if traceback:
            prefix = f"{stamp} {self.pid} ERROR {logger} {inst}"
            lines.extend(prefix + line for line in traceback)
            lines.append(prefix)
        self._file.write("\n".join(lines) + "\n")

    def close(self) -> None:
        self._file.close()


def fake_traceback(frames: list[tuple[str, int, str, str]], exc_class: str, exc_text: str) -> list[str]:
    """Python's traceback text for frames (file, line, function, source line)."""
    lines = ["Traceback (most recent call last):"]
    for filename, lineno, function, source in frames:
        lines.append(f'  File "{filename}", line {lineno}, in {function}')
        lines.append(f"    {source}")
    lines.append(f"{exc_class}: {exc_text}")
    return lines


class LogSet:
    """Every service log of the embedded cloud, in one directory."""

    def __init__(self, directory: Path, compute_hosts: list[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        base = os.getpid()
        names = ["nova-api", "nova-conductor", "nova-scheduler", "cinder-volume",
                 "neutron-server", "keystone", "glance-api", "placement-api"]
        self.logs: dict[str, ServiceLog] = {}
        for offset, name in enumerate(names):
            self.logs[name] = ServiceLog(self.directory / f"{name}.log", base + offset + 1)
        for offset, host in enumerate(compute_hosts):
            self.logs[f"nova-compute-{host}"] = ServiceLog(
                self.directory / f"nova-compute-{host}.log", base + 100 + offset)

    def __getitem__(self, name: str) -> ServiceLog:
        return self.logs[name]

    @property
    def api(self) -> ServiceLog:
        return self.logs["nova-api"]

    @property
    def conductor(self) -> ServiceLog:
        return self.logs["nova-conductor"]

    @property
    def scheduler(self) -> ServiceLog:
        return self.logs["nova-scheduler"]

    @property
    def volume(self) -> ServiceLog:
        return self.logs["cinder-volume"]

    @property
    def network(self) -> ServiceLog:
        return self.logs["neutron-server"]

    def compute(self, host: str) -> ServiceLog:
        return self.logs[f"nova-compute-{host}"]

    def close(self) -> None:
        for log in self.logs.values():
            log.close()
