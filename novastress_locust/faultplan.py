"""Faults during the load: restart, kill, stop and freeze the cloud's services on a schedule, and
measure how the cloud recovers.

    locust -f locustfiles/create_destroy.py --headless -t 2m --fault-preset devstack \\
        --fault 'at=30s action=restart service=nova-compute host=compute-1' \\
        --fault 'at=60s action=freeze service=nova-conductor for=5s'

A fault is `key=value` words: a trigger (`at=30s`; `after=20`: once 20 actions have ended; or
`every=45s` from `at=` or `after=` on), an `action` (restart, kill — SIGKILL, started again after
`for=` —, stop, start, freeze — SIGSTOP for `for=`, then SIGCONT), a `service` (SERVICES) and for
services that run on several hosts a `host` (a host as os-services names it, `random` or `all`).
Several faults: `--fault` again, or `;` between them.

How a service is acted on comes from `--fault-preset`: systemd units as devstack names them
(`devstack`), as distribution packages do (`systemd`), kolla-ansible's containers (`kolla`,
`kolla-podman`), or the project's real-Nova stack (`realnova`: `novastress-realnova service`).
Commands run over SSH on the service's host (the log watch's settings and host-key rules;
`--log-host-map` names their addresses) or, with `--fault-local` and for `realnova`, here.

Only the master (or the local runner) injects, and only what the schedule names. Each fault is a
FAULT row (`restart nova-compute@compute-1`: the command's time; a failure when the command failed),
then RECOVERY rows: the service back (`nova-compute@compute-1 back`: from its start or thaw to a
heartbeat in os-services newer than the fault, or its API answering) and each kind of action's first
success after it (`boot_and_delete after restart nova-compute@compute-1`). At the end of the test
(-t, Ctrl-C, SIGTERM) every service the schedule left stopped, killed or frozen is started or thawed
again; one line names any that could not be. `--fault-dry-run` prints the commands and runs none.
"""
from __future__ import annotations

import logging
import random
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

import gevent

from .cloud import Retry, RetryingClient
from .errors import first_line
from .faultspec import (API_TYPES, COMMAND_TIMEOUT, MAX_REPEATS, NOVA_BINARIES, Fault, FaultError, Preset, command,
                        customized, parse, preset)

LOG = logging.getLogger("novastress.faults")

# -- what a fault did -----------------------------------------------------------------------
@dataclass
class FaultRecord:
    """One fault as it happened, for the summary, --summary-json and the web UI."""

    label: str
    started: float                 # seconds after the test started
    commands: list[str] = field(default_factory=list)
    command_seconds: float = 0.0
    error: str | None = None
    back_seconds: float | None = None            # service back, from its start or thaw
    next_success: dict[str, float] = field(default_factory=dict)   # action -> seconds after the fault
    phase: str = "acting"                        # acting, recovering, done
    recovered: float | None = None               # when the recovery check ended (seconds after start)
    not_back: str | None = None                  # why the service was not seen back
    note: str | None = None                      # what was not checked, or cut short

    @property
    def failed(self) -> bool:
        """The command failed, or the service did not come back: the run fails."""
        return bool(self.error or self.not_back)

    def as_dict(self) -> dict:
        return {"fault": self.label, "at": round(self.started, 3), "commands": self.commands,
                "command_seconds": round(self.command_seconds, 3), "error": self.error,
                "back_seconds": None if self.back_seconds is None else round(self.back_seconds, 3),
                "not_back": self.not_back, "note": self.note,
                "next_success": {k: round(v, 3) for k, v in self.next_success.items()}}

    def line(self) -> str:
        text = f"FAULT +{self.started:.1f}s {self.label}: "
        if self.error:
            return text + f"FAILED: {self.error}"
        text += f"command {self.command_seconds:.1f} s"
        if self.back_seconds is not None:
            text += f", back in {self.back_seconds:.1f} s"
        elif self.not_back:
            text += f", NOT BACK: {self.not_back}"
        if self.note:
            text += f" ({self.note})"
        if self.next_success:
            text += "; next success: " + ", ".join(f"{name} {seconds:.1f} s"
                                                  for name, seconds in sorted(self.next_success.items()))
        return text


# -- running it ---------------------------------------------------------------------------
Runner = Callable[[str, str], tuple[int, str]]      # (host, command) -> (exit status, output)


def run_local(host: str, text: str) -> tuple[int, str]:
    try:
        done = subprocess.run(shlex.split(text), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT)
    except FileNotFoundError as exc:
        return 127, str(exc)
    except subprocess.TimeoutExpired:
        return 124, f"did not finish within {COMMAND_TIMEOUT:.0f} s"
    return done.returncode, (done.stdout + done.stderr).strip()


class Schedule:
    """The faults of one test, run by one greenlet on the master from test start to test stop."""

    def __init__(self, faults: list[Fault], chosen: Preset, runner: Runner, hosts: Callable[[str], list[str]],
                 probe, report: Callable[..., None], dry_run: bool = False, recovery_timeout: float = 120.0,
                 successes: Callable[[], dict[str, int]] | None = None, actions_ended: Callable[[], int] | None = None,
                 window_grace: float = 60.0, aftermath: "Aftermath | None" = None) -> None:
        self.faults = faults
        self.preset = chosen
        self.runner = runner
        self.hosts = hosts                  # service -> the hosts it runs on (os-services)
        self.probe = probe                  # Probe: is the service back?
        self.report = report                # Locust request event: report(request_type, name, ms, error)
        self.dry_run = dry_run
        self.recovery_timeout = recovery_timeout
        self.successes = successes or (lambda: {})
        self.actions_ended = actions_ended or (lambda: 0)
        self.window_grace = window_grace
        self.aftermath: Aftermath | None = aftermath
        self.records: list[FaultRecord] = []
        self.down: dict[tuple[str, str], str] = {}       # (service, host) -> "stopped" or "frozen"
        self.unrestored: list[str] = []                  # what the end of the run could not bring back
        self._loops: list[gevent.Greenlet] = []
        self._injections: list[tuple[gevent.Greenlet, FaultRecord]] = []
        self._watchers: list[gevent.Greenlet] = []
        self._started = time.monotonic()

    # -- lifetime ---------------------------------------------------------------------------
    def start(self) -> None:
        self._started = time.monotonic()
        self._loops += [gevent.spawn(self._fault_loop, fault) for fault in self.faults]

    @property
    def active(self) -> bool:
        return bool(self._loops or self.down or self.records)

    def stop(self, timeout: float = 60.0) -> list[str]:
        """End the schedule: no new fault; a fault still acting is cut short; the services still
        coming back are waited for (each within --fault-recovery-timeout of its fault); what the
        schedule left down is brought back. Returns lines naming what could not be."""
        gevent.killall(self._loops, timeout=5)
        gevent.killall(self._watchers, timeout=5)     # the users have stopped: no next success comes
        self._loops, self._watchers = [], []
        for greenlet, record in self._injections:
            if record.phase == "acting" and not greenlet.dead:
                greenlet.kill(timeout=5)
                record.phase, record.note = "done", "cut short by the end of the test"
        recovering = [(greenlet, record) for greenlet, record in self._injections if not greenlet.dead]
        if recovering and not self.dry_run:
            print(f"novastress: waiting up to {self.recovery_timeout:g} s (--fault-recovery-timeout) for "
                  f"{', '.join(record.label for _g, record in recovering)} to come back", file=sys.stderr, flush=True)
            gevent.joinall([greenlet for greenlet, _record in recovering], timeout=self.recovery_timeout + 5)
            gevent.killall([greenlet for greenlet, _record in recovering], timeout=5)
        self._injections = []
        problems: list[str] = []
        if self.dry_run:
            return problems
        deadline = time.monotonic() + timeout
        for (service, host), how in list(self.down.items()):
            if time.monotonic() > deadline:
                problems.append(f"{service}{'@' + host if host else ''} left {how}: the restore ran out of time")
                continue
            status, output = self._run(host, "thaw" if how == "frozen" else "start", service)
            if status == 0:
                self.down.pop((service, host), None)
                LOG.warning("novastress: %s%s was %s by the fault schedule: %s again at the end of the run",
                            service, "@" + host if host else "", how, "thawed" if how == "frozen" else "started")
            else:
                problems.append(f"{service}{'@' + host if host else ''} left {how}: {first_line(output)}")
        self.unrestored = problems
        return problems

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def window(self) -> str | None:
        """The fault whose window is open now (from its start until --fault-window seconds after
        its recovery check ended), for marking what the logs say meanwhile."""
        now, grace = self.elapsed(), self.window_grace
        for record in reversed(self.records):
            end = record.recovered if record.recovered is not None else (
                now if record.phase != "done" else record.started + record.command_seconds)
            if record.started <= now <= end + grace:
                return record.label
        return None

    # -- one fault ----------------------------------------------------------------------------
    def _fault_loop(self, fault: Fault) -> None:
        when = fault.at
        if fault.after:
            # after=N: once N actions have ended (successes and failures, every worker's)
            while self.actions_ended() < fault.after:
                gevent.sleep(0.25)
            when = self.elapsed()
        for _ in range(MAX_REPEATS):
            gevent.sleep(max(0.0, when - self.elapsed()))
            for host in self._targets(fault):
                record = FaultRecord(f"{fault.action} {fault.service}{'@' + host if host else ''}", self.elapsed())
                self.records.append(record)
                self._injections.append((gevent.spawn(self._inject, fault, host, record), record))
            if fault.every is None:
                return
            when += fault.every

    def _targets(self, fault: Fault) -> list[str]:
        if fault.host not in ("random", "all") and (fault.host or fault.service != "nova-compute"):
            return [fault.host]
        hosts = self.hosts(fault.service) or [""]
        return hosts if fault.host == "all" else [random.choice(hosts)]

    def _inject(self, fault: Fault, host: str, record: FaultRecord) -> None:
        started, held = time.monotonic(), 0.0
        for number, verb in enumerate([fault.action] + {"kill": ["start"], "freeze": ["thaw"]}.get(fault.action, [])):
            if number and fault.hold:
                gevent.sleep(fault.hold)
                held = fault.hold
            # what a failed command left is unknown: until a start (or thaw) succeeds, the end of
            # the run starts (or thaws) it
            if verb in ("stop", "kill", "restart", "freeze"):
                self.down[(fault.service, host)] = "frozen" if verb == "freeze" else "stopped"
            status, output = self._run(host, verb, fault.service, record)
            if status != 0:
                record.error = f"{verb}: {first_line(output) or f'exit {status}'}"
                break
            if verb in ("start", "thaw", "restart"):
                self.down.pop((fault.service, host), None)
        record.command_seconds = time.monotonic() - started - held
        self.report("FAULT", record.label, record.command_seconds * 1000, record.error)
        if record.error or fault.action == "stop" or self.dry_run:
            record.phase = "done"
            return
        record.phase = "recovering"
        back_from = time.monotonic()
        # the heartbeats now: a restarted service's old process may have reported while it was
        # shutting down; only one newer than the end of the command is the new process's
        before = self.probe.mark(fault.service, host)
        self._watchers.append(gevent.spawn(self._watch_successes, record, self.successes(), back_from))
        back = self.probe.back(fault.service, host, before, self.recovery_timeout)
        where = f"{fault.service}{'@' + host if host else ''}"
        if back is None:
            record.note = f"its return not checked: {self.probe.unchecked}"
        elif back:
            record.back_seconds = time.monotonic() - back_from
            self.report("RECOVERY", f"{where} back", record.back_seconds * 1000, None)
        else:
            record.not_back = f"not back within {self.recovery_timeout:g} s (--fault-recovery-timeout)"
            self.report("RECOVERY", f"{where} back", self.recovery_timeout * 1000, record.not_back)
        if back and self.aftermath is not None:
            self.aftermath.check(record.label, self.recovery_timeout)
        record.phase, record.recovered = "done", self.elapsed()

    def _watch_successes(self, record: FaultRecord, before: dict[str, int], since: float) -> None:
        """Each kind of action's first success after the fault: a RECOVERY row."""
        deadline = since + self.recovery_timeout
        waiting = set(before) | set(self.successes())
        while waiting and time.monotonic() < deadline:
            now = self.successes()
            for name in list(waiting):
                if now.get(name, 0) > before.get(name, 0):
                    seconds = record.next_success[name] = time.monotonic() - since
                    self.report("RECOVERY", f"{name} after {record.label}", seconds * 1000, None)
                    waiting.discard(name)
            gevent.sleep(0.25)

    def _run(self, host: str, verb: str, service: str, record: FaultRecord | None = None) -> tuple[int, str]:
        text = command(self.preset, verb, service, host)
        if record is not None:
            record.commands.append(text)
        where = "here" if self.preset.local or not host else host
        if self.dry_run:
            print(f"novastress: fault dry run: would run on {where}: {text}", file=sys.stderr, flush=True)
            return 0, ""
        LOG.info("novastress: fault: running on %s: %s", where, text)
        return self.runner(host, text)


# -- what the fault left --------------------------------------------------------------------
class Aftermath:
    """Once a service is back, the run's servers it caught in flight: each must leave its
    transitional task state (or be gone) within the bound, and then hold in Placement what its
    flavor says (nothing once gone); none may sit in ERROR without an instance fault to say why.
    What does not is an INVARIANT failure naming the fault."""

    SETTLED = ("ACTIVE", "SHUTOFF", "PAUSED", "SUSPENDED")
    ALLOCATION_LOOK = 10.0        # seconds an allocation may lag its server's change

    def __init__(self, reads: "ServerReads", violation, interval: float) -> None:
        self.reads = reads
        self.violation = violation        # violation(kind, server id, detail)
        self.interval = interval

    def check(self, label: str, timeout: float) -> None:
        from .invariants import TRANSITIONAL, error_without_fault
        try:
            seen = self.reads.servers()
        except Exception as exc:
            LOG.warning("novastress: fault: cannot list the run's servers after %s: %s", label, first_line(exc))
            return
        for server in seen:
            if error_without_fault(server):
                self.violation("error-without-fault", server["id"], f"ERROR with no fault to say why, after {label}")
        caught = {s["id"]: s.get("OS-EXT-STS:task_state") or s.get("status") for s in seen
                  if s.get("OS-EXT-STS:task_state") in TRANSITIONAL or s.get("status") == "BUILD"}
        in_flight = list(caught)
        deadline = time.monotonic() + timeout
        while caught and time.monotonic() < deadline:
            gevent.sleep(self.interval)
            try:
                now = {s["id"]: s for s in self.reads.servers()}
            except Exception as exc:      # the cloud may still be struggling: look again
                LOG.debug("novastress: fault: listing the run's servers: %s", first_line(exc))
                continue
            for server_id in list(caught):
                server = now.get(server_id)
                if server is None or server.get("status") != "BUILD" and \
                        server.get("OS-EXT-STS:task_state") not in TRANSITIONAL:
                    del caught[server_id]
        for server_id, task in caught.items():
            self.violation("stuck-after-fault", server_id,
                           f"still {task} {timeout:g} s after {label} was back (--fault-recovery-timeout)")
        if self.reads.placement:
            for server_id in in_flight:
                if server_id not in caught and not self._allocations_match(server_id, label):
                    return                # Placement is not readable with these credentials

    def _allocations_match(self, server_id: str, label: str) -> bool:
        """Placement holds what the settled server's flavor says, nothing once it is gone (a
        change may lag ALLOCATION_LOOK seconds); False when Placement cannot be read."""
        from .invariants import resource_text
        deadline = time.monotonic() + self.ALLOCATION_LOOK
        while True:
            try:
                server = self.reads.show(server_id)
                held = self.reads.allocations(server_id)
            except Exception as exc:
                if getattr(exc, "status", None) == 403:
                    LOG.warning("novastress: fault: Placement is admin-only: the allocations of the servers a "
                                "fault caught are not checked (give --os-admin-username)")
                    return False
                LOG.debug("novastress: fault: allocations of %s: %s", server_id, first_line(exc))
                server, held = {}, None
            expected = _flavor_resources(server) if server else {} if server is None else None
            if server and (server.get("status") not in self.SETTLED or server.get("OS-EXT-STS:task_state")
                           or not expected):
                return True               # moving on (a user's next action), or no flavor to compare
            if held is not None and expected is not None and all(held.get(k, 0) == v for k, v in expected.items()) \
                    and (expected or not held):
                return True
            if time.monotonic() >= deadline:
                if held is not None and expected is not None:
                    self.violation("allocations-after-fault", server_id,
                                   f"Placement holds {resource_text(held)} for it, its "
                                   f"{'flavor says ' + resource_text(expected) if server else 'server is gone'}, "
                                   f"after {label}")
                return True
            gevent.sleep(1.0)


class ServerReads:
    """The run's servers as an admin reads them (`call` raises keystoneauth's HttpError)."""

    def __init__(self, call, prefix: str, placement: bool = True) -> None:
        self.call = call
        self.prefix = prefix              # <prefix>-<run id>-
        self.placement = placement        # the catalog lists Placement
        self._every_project = {"all_tenants": "1"}    # isolated tenants' servers too, when admin may

    def servers(self) -> list[dict]:
        import re
        try:
            listed = self.call("compute", "GET", "/servers/detail",
                               params={"name": f"^{re.escape(self.prefix)}", **self._every_project}).json()["servers"]
        except Exception as exc:
            if getattr(exc, "status", None) != 403 or not self._every_project:
                raise
            self._every_project = {}      # not admin: the run's own project
            return self.servers()
        return [s for s in listed if str(s.get("name", "")).startswith(self.prefix)]

    def show(self, server_id: str) -> dict | None:
        try:
            return self.call("compute", "GET", f"/servers/{server_id}").json()["server"]
        except Exception as exc:
            if getattr(exc, "status", None) == 404:
                return None
            raise

    def allocations(self, server_id: str) -> dict[str, int]:
        """The consumer's resources summed over its providers."""
        held: dict[str, int] = {}
        found = self.call("placement", "GET", f"/allocations/{server_id}").json().get("allocations") or {}
        for provider in found.values():
            for name, value in (provider.get("resources") or {}).items():
                held[name] = held.get(name, 0) + int(value)
        return held


def _flavor_resources(server: dict) -> dict[str, int]:
    """What Placement should hold for a server (its embedded flavor, microversion 2.47+)."""
    flavor = server.get("flavor") or {}
    if "vcpus" not in flavor:
        return {}
    wanted = {"VCPU": int(flavor["vcpus"]), "MEMORY_MB": int(flavor["ram"])}
    disk = int(flavor.get("disk") or 0) + int(flavor.get("ephemeral") or 0) + -(-int(flavor.get("swap") or 0) // 1024)
    if disk and server.get("image"):            # a volume-backed root disk is not the host's
        wanted["DISK_GB"] = disk
    return wanted


# -- is it back? --------------------------------------------------------------------------
class Probe:
    """Whether a service is back: a Nova service's heartbeat newer than the fault, an API answering.
    `call(service_type, method, path)` is an admin client's call (None: only commands, no checks)."""

    def __init__(self, call, endpoint: Callable[[str], str | None]) -> None:
        self.call = call
        self.endpoint = endpoint
        self.unchecked: str | None = None     # why a Nova service's return cannot be checked

    def _heartbeats(self, service: str, host: str) -> dict[str, tuple[str, str]]:
        if service not in NOVA_BINARIES:
            service, host = "nova-compute", ""
        params = {"binary": service, **({"host": host} if host else {})}
        try:
            services = self.call("compute", "GET", "/os-services", params=params).json()["services"]
        except Exception as exc:
            if getattr(exc, "status", None) == 403 and self.unchecked is None:
                self.unchecked = ("os-services is admin-only and this run's credentials are not admin "
                                  "(give --os-admin-username and --os-admin-password)")
                LOG.warning("novastress: fault: %s", self.unchecked)
            raise
        return {f"{s['host']}": (s.get("updated_at") or "", s.get("state", "")) for s in services}

    def mark(self, service: str, host: str):
        """What to compare with afterwards (the heartbeats before the fault)."""
        if self.call is None or service in API_TYPES:
            return None                   # an API is back when its endpoint answers
        try:
            return self._heartbeats(service, host)
        except Exception as exc:         # the cloud may already be struggling; compare with nothing
            LOG.debug("novastress: fault: no heartbeat before the fault: %s", first_line(exc))
            return {}

    def back(self, service: str, host: str, before, timeout: float) -> bool | None:
        """True when back within `timeout`, False when not, None when it cannot be told."""
        if self.call is None:
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self._is_back(service, host, before or {}):
                    return True
            except Exception as exc:     # down still: connection refused, 503, a 500 without its DB
                if self.unchecked and service not in API_TYPES:
                    return None
                LOG.debug("novastress: fault: %s not back yet: %s", service, first_line(exc))
            gevent.sleep(0.5)
        return False

    def _is_back(self, service: str, host: str, before: dict) -> bool:
        if service in API_TYPES:
            url = self.endpoint(API_TYPES[service])
            if url is None:
                return True
            import requests
            return requests.get(url, timeout=5).status_code < 500
        # a Nova service (or what every heartbeat passes through: the broker, the database) is
        # back when a heartbeat newer than the fault arrived and os-services calls it up
        now = self._heartbeats(service, host)
        return any(state == "up" and _newer(updated, before.get(name, ("", ""))[0])
                   for name, (updated, state) in now.items())


def _newer(updated: str, earlier: str) -> bool:
    if not updated:
        return False
    if not earlier:
        return True
    try:
        return datetime.fromisoformat(updated.rstrip("Z")) > datetime.fromisoformat(earlier.rstrip("Z"))
    except ValueError:
        return updated != earlier


# -- Locust wiring ------------------------------------------------------------------------
def check(options, embedded: bool) -> list[Fault]:
    """The preflight's look at the fault options: FaultError (exit 2) on anything wrong."""
    faults = parse(getattr(options, "fault", None))
    if not faults:
        return []
    name = getattr(options, "fault_preset", None)
    if embedded and name not in (None, "embedded"):
        raise FaultError(f"--fault-preset {name} acts on a real cloud's services; this run uses the embedded "
                         f"cloud (leave --fault-preset out, or set --os-cloud)")
    if embedded and (getattr(options, "fault_command", None) or getattr(options, "fault_name", None)):
        raise FaultError("--fault-command and --fault-name say how a real cloud's services are acted on; the "
                         "embedded cloud's are acted on through its admin endpoint (leave them out)")
    if name == "embedded" and not embedded:
        raise FaultError("--fault-preset embedded acts on the embedded cloud, and this run has a real one: "
                         "name its deployment (devstack, systemd, kolla, kolla-podman, realnova)")
    chosen = customized(preset("embedded" if embedded else name), getattr(options, "fault_command", None),
                        getattr(options, "fault_name", None))
    remote = not chosen.local and not getattr(options, "fault_local", False)
    if remote and not getattr(options, "fault_dry_run", False):
        for fault in faults:
            if not fault.host and fault.service != "nova-compute":
                raise FaultError(f"--fault {fault.text!r}: say on which host {fault.service} runs (host=...), "
                                 f"or give --fault-local to run the commands on this machine")
    return faults


def register(events) -> None:
    """Run the schedule on the master (or local runner) from test start, restore at test stop."""
    if getattr(events, "_novastress_faults_registered", False):
        return
    events._novastress_faults_registered = True

    def on_test_start(environment, **_kwargs) -> None:
        from locust.runners import WorkerRunner
        if isinstance(environment.runner, WorkerRunner) or environment.parsed_options is None:
            return
        faults = parse(getattr(environment.parsed_options, "fault", None))
        if not faults:
            return
        from .state import run_state
        state = run_state(environment)
        state.faults = _schedule(environment, state, faults)
        state.faults.start()

    def on_test_stop(environment, **_kwargs) -> None:
        from .state import run_state
        schedule = run_state(environment).faults
        if schedule is not None and schedule.active:
            schedule.stop()      # the summary (summary.py) says what happened, and what was not restored

    events.test_start.add_listener(on_test_start)
    events.test_stop.add_listener(on_test_stop)


def _schedule(environment, state, faults: list[Fault]) -> Schedule:
    options = environment.parsed_options
    chosen = customized(preset("embedded" if state.embedded is not None else options.fault_preset),
                        getattr(options, "fault_command", None), getattr(options, "fault_name", None))
    dry_run = bool(getattr(options, "fault_dry_run", False))
    state.use_embedded_admin()
    # checks during a fault: one try each (the probe and the aftermath poll again themselves)
    admin = RetryingClient(state.admin_target(), Retry(retries=0), deadline=float("inf"), timeout=10,
                           endpoints=state.endpoints)
    call = admin_call(admin)

    def hosts(service: str) -> list[str]:
        if service not in NOVA_BINARIES:
            return []
        try:
            listed = call("compute", "GET", "/os-services", params={"binary": service}).json()["services"]
        except Exception as exc:
            LOG.warning("novastress: fault: cannot list the hosts of %s: %s", service, first_line(exc))
            return []
        return sorted(s["host"] for s in listed if s.get("status") == "enabled")

    if state.embedded is not None:
        runner = _embedded_runner(admin.session, state)
    elif chosen.local or getattr(options, "fault_local", False):
        runner = run_local
    else:
        runner = _ssh_runner(options)

    def report(request_type: str, name: str, milliseconds: float, error: str | None) -> None:
        environment.events.request.fire(request_type=request_type, name=name, response_time=milliseconds,
                                        response_length=0, response=None,
                                        exception=Exception(error) if error else None, context={})

    def successes() -> dict[str, int]:
        return {entry.name: entry.num_requests - entry.num_failures
                for (name, method), entry in environment.stats.entries.items() if method == "ACTION"}

    def actions_ended() -> int:
        return sum(entry.num_requests for (_name, method), entry in environment.stats.entries.items()
                   if method == "ACTION")

    def violation(kind: str, server_id: str, detail: str) -> None:
        from .invariants import invariants
        invariants(environment).violation(kind, server_id, detail, request_ids=[])

    try:
        placement = admin.has_service("placement")
    except Exception:                   # the catalog is not readable now: the checks say so later
        placement = False
    aftermath = None if dry_run else Aftermath(ServerReads(call, f"{state.prefix}-{state.run_id}-", placement),
                                               violation, float(options.status_poll_interval))
    probe = Probe(None if dry_run else call, admin.endpoint)
    return Schedule(faults, chosen, runner, hosts, probe, report, dry_run=dry_run,
                    recovery_timeout=float(options.fault_recovery_timeout), successes=successes,
                    actions_ended=actions_ended, window_grace=float(options.fault_window), aftermath=aftermath)


def admin_call(admin: RetryingClient) -> Callable:
    """`call(service_type, method, path, params=None)` of the checks: the response, or CallFailed
    (its `status`) for any other answer than 200; compute at 2.53 (os-services ids, flavor views)."""
    def call(service_type: str, method: str, path: str, params: dict | None = None):
        return admin.call(service_type, method, path, params=params,
                          microversion="2.53" if service_type == "compute" else None)
    return call


def _embedded_runner(session, state) -> Runner:
    """The embedded cloud's services, through its admin endpoint (fakecloud/processes.py)."""
    root = str(state.embedded.auth_url).rsplit("/identity", 1)[0]

    def run(host: str, text: str) -> tuple[int, str]:
        verb, service = text.split()
        response = session.post(f"{root}/fakecloud/services", json={"action": verb, "service": service,
                                                                   "host": host}, raise_exc=False)
        return (0 if response.status_code == 200 else response.status_code), response.text[:300]
    return run


def _ssh_runner(options) -> Runner:
    """Commands over SSH to the service's host, with the log watch's settings and host-key rules."""
    from logwatch import parse_host_map
    from logwatch.transports import SSHTransport, TransportError
    from .watch import ssh_settings
    settings = ssh_settings(options)
    addresses = parse_host_map(getattr(options, "log_host_map", None))
    connections: dict[str, SSHTransport] = {}

    def run(host: str, text: str) -> tuple[int, str]:
        address, port = addresses.get(host, (host, None))
        if host not in connections:
            connections[host] = SSHTransport(settings, address, port)
        try:
            output = connections[host].run(f"{text} 2>&1; echo novastress-exit=$?", timeout=COMMAND_TIMEOUT)
        except TransportError as exc:
            return 255, str(exc)
        body, _, status = output.decode(errors="replace").strip().rpartition("novastress-exit=")
        return (int(status) if status.strip().isdigit() else 255), body.strip()
    return run
