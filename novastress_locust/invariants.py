"""Invariant checks: the wrong end states races leave behind, reported as `INVARIANT` failures.

    checks = invariants(environment)
    checks.watch_delete(server_id)          # 404 within a bound, then no Placement allocations
    checks.attached(server_id, volume_id)   # once it is deleted, the volume must not stay attached
    checks.violation("quota-exceeded", project_id, "6 servers live, limit 4")

During the load every deleted server must answer 404 within `--invariant-delete-timeout` and
(admin) lose its Placement allocations (consumer = server id) within
`--invariant-allocation-timeout`; the volumes the storm attached to it must come off it and the
floating IPs it associated with it must leave its deleted port within that bound too (the run's
own credentials); a scan every `--invariant-check-interval` finds servers stuck
in one task_state and ERROR servers without a fault. After the load, once every server has
settled: resource-provider usages must equal the sum of the live servers' flavors, the
project's quota usage must equal its live servers, and a quota step boots past a low limit.

A violation fires a Locust `request` event of type `INVARIANT` named after the invariant
(`placement-allocations-leak`), whose error names the server and the request ids of the
actions that touched it; it fails the run (exit code) and ends it under `--stop-on-error`.
Without admin credentials the admin-only checks are skipped with one warning line.
"""
from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, Iterable

import gevent
from gevent.event import Event
from gevent.pool import Group
from locust.runners import WorkerRunner

from .client import ApiError, OpenStackClient, microversion_at_least
from .greenlets import joined, spawn_kept
from .requestlog import ActionRecord
from .state import Leak, request_index, run_state

LOG = logging.getLogger("novastress")
ADMIN_CHECKS = ("placement-allocations-leak", "resource-provider-usage", "quota-step",
                "server-group-host-count")
# task states a server passes through on its own; a server still in one past the bound is stuck
TRANSITIONAL = {"scheduling", "networking", "block_device_mapping", "spawning", "rebooting", "reboot_pending",
                "reboot_started", "rebooting_hard", "reboot_pending_hard", "reboot_started_hard",
                "pausing", "unpausing", "suspending", "resuming", "powering-off", "powering-on",
                "rebuilding", "rebuild_block_device_mapping", "rebuild_spawning", "resize_prep",
                "resize_migrating", "resize_migrated", "resize_finish", "resize_reverting",
                "resize_confirming", "shelving", "shelving_image_pending_upload", "shelving_image_uploading",
                "shelving_offloading", "unshelving", "image_snapshot", "image_snapshot_pending",
                "image_backup", "image_pending_upload", "image_uploading", "deleting", "migrating"}
PLACEMENT_VERSION = {"OpenStack-API-Version": "placement 1.28"}
TOUCHES_KEPT = 20_000
# at the end of a run an allocation check reads until this many seconds after the server was
# gone (a late PUT lands within 1-2 s), not for its whole window
FINAL_ALLOCATION_LOOK = 5.0
MOVING = ("RESIZE", "VERIFY_RESIZE", "REVERT_RESIZE", "MIGRATING")   # statuses with a migration
# a resized server deleted at the end: its compute frees the migration's allocation on its own time
FINAL_MIGRATION_LOOK = 30.0


class InvariantViolation(Exception):
    """The error of an INVARIANT request event: one line naming the subject and request ids."""


@dataclass
class Violation:
    kind: str                   # e.g. "placement-allocations-leak"
    subject: str                # server id (or project / group id)
    detail: str
    request_ids: list[str] = field(default_factory=list)
    time: float = field(default_factory=time.time)

    def line(self) -> str:
        ids = f" [requests {', '.join(self.request_ids[:12])}]" if self.request_ids else ""
        return f"{self.kind}: {self.subject}: {self.detail}{ids}"


class Invariants:
    """The checks of one Locust Environment (one per process; the end checks run on the master)."""

    def __init__(self, environment: Any) -> None:
        self.environment = environment
        self.violations: list[Violation] = []
        self.active = False
        self._reported: set[tuple[str, str]] = set()
        # server id -> global request ids of the actions that touched it (oldest first)
        self._touches: OrderedDict[str, list[str]] = OrderedDict()
        self._refused: dict[str, set[str]] = {}   # server id -> actions whose request the API refused
        self._deleted_by: dict[str, str] = {}   # server id -> global id of the action whose DELETE was accepted
        self._seen_task: dict[str, tuple[str, float]] = {}    # server id -> (task_state, first seen)
        # server id -> ("volume" | "floating_ip", id) the storm put on it; checked once it is deleted
        self._held: dict[str, list[tuple[str, str]]] = {}
        self._held_checked: dict[str, Event] = {}   # server id -> set once those checks are done
        self._resized: OrderedDict[str, None] = OrderedDict()   # servers the storm resized
        self._migration_of: OrderedDict[str, str] = OrderedDict()   # migration uuid -> its deleted server
        self._watchers = Group()
        self._finishing = False            # stop() was called: the checks take a last look
        self._scanner: gevent.Greenlet | None = None
        self._member = None
        self._admin = None
        self._admin_checked = False
        self._clients: dict[str, Any] = {}

    # -- plumbing --------------------------------------------------------------------
    @property
    def state(self):
        return run_state(self.environment)

    @property
    def options(self):
        return self.environment.parsed_options

    def member(self):
        """The run's own credentials (an OpenStackClient)."""
        if self._member is None:
                self._member = OpenStackClient(self.state, self.state.ensure_target(), "invariants")
        return self._member

    def admin(self):
        """An admin OpenStackClient, or None (the admin-only checks are then skipped)."""
        if not self._admin_checked:
            self._admin_checked = True
            self._admin = _admin_client(self.state)
        return self._admin

    def touched(self, server_id: str, global_request_id: str) -> None:
        """An action sent requests about this server: its ids go into any violation about it."""
        ids = self._touches.get(server_id)
        if ids is None:
            ids = self._touches[server_id] = []
            for forgotten in _trim(self._touches):
                self._deleted_by.pop(forgotten, None)
                self._refused.pop(forgotten, None)
        if global_request_id not in ids:
            ids.append(global_request_id)

    def refused(self, server_id: str, global_request_id: str) -> None:
        """The API refused this action's request on the server (409): it changed nothing there."""
        if server_id in self._touches:
            self._refused.setdefault(server_id, set()).add(global_request_id)

    def request_ids(self, server_id: str) -> list[str]:
        """Global request ids of every action that touched the server, the latest (the ones that
        raced) first, then their local request ids; the action whose DELETE was accepted comes
        first with its local ids too (a finding keeps its first ids: its DELETE's among them)."""
        index = request_index(self.environment)
        touches = self._touches.get(server_id, [])
        # the action whose DELETE was accepted first (in a storm round it is also the action the
        # DELETE raced), then the others, the latest first
        deleter = self._deleted_by.get(server_id)
        refused = self._refused.get(server_id, ())
        # then the actions the cloud accepted (they changed the server), then those it refused (409)
        ordered = [g for g in (deleter,) if g] + [g for g in reversed(touches) if g != deleter and g not in refused] \
            + [g for g in reversed(touches) if g != deleter and g in refused]
        records = [index.lookup(g) for g in ordered] or [index.lookup(server_id)]
        records = [record for record in records if record is not None]
        first = records[:1] if deleter and records and records[0].global_request_id == deleter else []
        found: list[str] = []
        for request_id in chain(*(chain([r.global_request_id], r.request_ids) for r in first),
                                (r.global_request_id for r in records), *(r.request_ids for r in records)):
            if request_id not in found:
                found.append(request_id)
        return found

    def violation(self, kind: str, subject: str, detail: str, request_ids: Iterable[str] | None = None) -> None:
        """Fire one INVARIANT failure (once per kind and subject)."""
        if (kind, subject) in self._reported:
            return
        self._reported.add((kind, subject))
        ids = list(request_ids) if request_ids is not None else self.request_ids(subject)
        found = Violation(kind, subject, detail, ids)
        self.violations.append(found)
        LOG.error("novastress: invariant violated: %s", found.line())
        self.environment.events.request.fire(
            request_type="INVARIANT", name=kind, response_time=0, response_length=0,
            exception=InvariantViolation(found.line()[len(kind) + 2:]),
            context={"server_id": subject, "request_ids": ids})
        runner = self.environment.runner
        if not isinstance(runner, WorkerRunner):
            code = getattr(self.options, "exit_code_on_error", 1)
            self.environment.process_exit_code = max(self.environment.process_exit_code or 0, code)
        if getattr(self.options, "stop_on_error", False) and runner is not None and \
                getattr(runner, "state", None) in ("spawning", "running"):
            self.state.stop_run(f"invariant {kind} violated by {subject} (--stop-on-error)")

    def skip_admin_checks(self, reason: str) -> None:
        print(f"novastress: {reason}: skipping the admin-only invariant checks "
              f"({', '.join(ADMIN_CHECKS)})", file=sys.stderr, flush=True)

    # -- during the load ---------------------------------------------------------------
    def watch_delete(self, server_id: str, client=None) -> None:
        """After an accepted DELETE: the server must answer 404, then lose its allocations.

        Polls go through a client of the same credential that is in no action: the deleting
        user's next action must not collect the checks' request ids."""
        if server_id in self._held:
            self._held_checked.setdefault(server_id, Event())
        deleting = getattr(client, "action", None)
        if deleting is not None:
            self._deleted_by.setdefault(server_id, deleting.global_request_id)
            _trim(self._deleted_by)
        self._watchers.spawn(self._watch_delete, server_id, self._own_client(client))

    def _own_client(self, client):
        if client is None or client.target.key == self.state.ensure_target().key:
            return self.member()
        own = self._clients.get(client.target.key)
        if own is None:
                own = self._clients[client.target.key] = OpenStackClient(self.state, client.target, "invariants")
        return own

    def resized(self, server_id: str) -> None:
        """The storm's resize of this server was accepted: when it is deleted, its migrations'
        allocations are checked too."""
        self._resized[server_id] = None
        _trim(self._resized)

    def _migrations_of(self, server_id: str) -> list[str]:
        """The uuids of a resized server's migrations (2.59+), read while it still exists: each is
        a Placement consumer, the source host's allocation while the resize lasts."""
        admin = self.admin()
        if admin is None or server_id not in self._resized:
            return []
        del self._resized[server_id]
        uuids = _migration_uuids(admin, server_id)
        self._migration_of.update(dict.fromkeys(uuids, server_id))
        _trim(self._migration_of)
        return uuids

    def _watch_delete(self, server_id: str, client) -> None:
        opts = self.options
        deadline = time.monotonic() + opts.invariant_delete_timeout
        last = "unknown"
        try:
            for migration in self._migrations_of(server_id):
                self._watchers.spawn(self.check_migration_allocations_gone, server_id, migration)
            while True:
                response = _show(client, server_id)
                if response.status_code == 404:
                    break
                server = response.json()["server"]
                last = f"{server['status']}/{server.get('OS-EXT-STS:task_state')}"
                if time.monotonic() >= deadline:
                    fault = (server.get("fault") or {}).get("message")
                    self.violation("server-not-deleted", server_id,
                                   f"still {last} {opts.invariant_delete_timeout:g} s after its DELETE was "
                                   f"accepted{f' (fault: {fault})' if fault else ''}")
                    if not self._delete_again(server_id, client):
                        return
                    break
                gevent.sleep(opts.status_poll_interval)
            self.check_held_released(server_id)
            self._release_waiters(server_id)   # a round waits for this, not for the allocation window
            self.check_allocations_gone(server_id)
        except ApiError as exc:  # the failed poll is already a failed request row
            LOG.warning("novastress: could not follow the delete of %s: %s", server_id, exc)
        finally:
            self._release_waiters(server_id)

    def _release_waiters(self, server_id: str) -> None:
        done = self._held_checked.pop(server_id, None)
        if done is not None:
            done.set()

    def _delete_again(self, server_id: str, client) -> bool:
        """The lost delete's server is deleted once more (the run leaves nothing); True once gone."""
        opts = self.options
        client.compute.delete(f"/servers/{server_id}", expect=(204, 404, 409),
                              name="compute DELETE /servers/{id} (invariant)")
        deadline = time.monotonic() + opts.invariant_delete_timeout
        while time.monotonic() < deadline:
            gevent.sleep(opts.status_poll_interval)
            if _show(client, server_id).status_code == 404:
                return True
        return False

    # -- volumes and floating IPs the storm put on servers --------------------------------
    def attached(self, server_id: str, volume_id: str) -> None:
        """The storm attached this volume to this server (checked once the server is deleted)."""
        self._hold(server_id, ("volume", volume_id))

    def associated(self, server_id: str, floating_ip_id: str) -> None:
        """The storm associated this floating IP with this server's port (checked once it is deleted)."""
        self._hold(server_id, ("floating_ip", floating_ip_id))

    def _hold(self, server_id: str, held: tuple[str, str]) -> None:
        found = self._held.setdefault(server_id, [])
        if held not in found:
            found.append(held)
        _trim(self._held)

    def wait_checked(self, server_id: str, timeout: float) -> None:
        """Until the checks of what this deleted server held are done (bounded): a round releases
        its volume or floating IP only once the checks have seen the state the delete left."""
        done = self._held_checked.get(server_id)
        if done is not None:
            done.wait(timeout)

    def check_held_released(self, server_id: str) -> None:
        """The server is gone: within the bound, no volume may stay attached to it and no floating
        IP may stay bound to its (deleted) port. Member credentials: they own both."""
        held = self._held.pop(server_id, [])
        if not held:
            return
        client, opts = self.member(), self.options
        deadline = time.monotonic() + opts.invariant_allocation_timeout
        while True:
            wrong = [(kind, resource_id, problem) for kind, resource_id in held
                     if (problem := self._still_held(client, server_id, kind, resource_id))]
            if not wrong:
                return
            if time.monotonic() >= deadline:
                for kind, resource_id, problem in wrong:
                    detail = f"{problem} {opts.invariant_allocation_timeout:g} s after server {server_id} was gone"
                    # a floating IP's is named after it: the server is gone, the floating IP is what is wrong
                    name, subject = (("volume-attached-to-deleted-server", server_id) if kind == "volume"
                                     else ("floating-ip-on-gone-port", resource_id))
                    self.violation(name, subject, detail, self.request_ids(server_id))
                return
            held = [(kind, resource_id) for kind, resource_id, _ in wrong]
            gevent.sleep(opts.status_poll_interval)

    def _still_held(self, client, server_id: str, kind: str, resource_id: str) -> str | None:
        """What is wrong with this volume / floating IP of the gone server, or None."""
        if kind == "volume":
            response = client.volume.get(f"/volumes/{resource_id}", expect=(200, 404),
                                         name="volume GET /volumes/{id} (invariant)")
            if response.status_code == 404:
                return None
            volume = response.json()["volume"]
            if any(a.get("server_id") == server_id for a in volume.get("attachments") or []):
                return f"volume {resource_id} still {volume.get('status')}, attached to it"
            if volume.get("status") in ("attaching", "reserved"):  # its attach to the server still in flight
                return f"volume {resource_id} still {volume.get('status')} to it"
            return None
        response = client.network.get(f"/v2.0/floatingips/{resource_id}", expect=(200, 404),
                                      name="network GET /v2.0/floatingips/{id} (invariant)")
        if response.status_code == 404:
            return None
        fip = response.json()["floatingip"]
        port_id = fip.get("port_id")
        if not port_id:
            return None
        port = client.network.get(f"/v2.0/ports/{port_id}", expect=(200, 404),
                                  name="network GET /v2.0/ports/{id} (invariant)")
        if port.status_code == 404:
            return (f"floating IP {fip.get('floating_ip_address')} ({fip.get('status')}) still bound to port "
                    f"{port_id} (fixed IP {fip.get('fixed_ip_address')}), which no longer exists")
        if port.json()["port"].get("device_id") == server_id:
            return (f"floating IP {fip.get('floating_ip_address')} still bound to port {port_id} "
                    f"(fixed IP {fip.get('fixed_ip_address')}) of the deleted server")
        return None

    def check_allocations_gone(self, server_id: str) -> None:
        """The server is gone: Placement must hold nothing for it at any read of the whole window.
        A late allocation PUT (an unshelve racing the delete) can land seconds after the 404 and
        live until nova-compute's periodic task heals it (60 s): a leak seen once is reported, with
        how long it lived. At the end of the run the window shrinks to a last few seconds."""
        admin = self.admin()
        if admin is None:
            return
        opts = self.options
        started = time.monotonic()
        deadline = started + opts.invariant_allocation_timeout
        first_seen: float | None = None
        resources: dict[str, int] = {}
        providers = 0
        while True:
            allocations = _placement(admin).get(f"/allocations/{server_id}",
                                                name="placement GET /allocations/{id} (invariant)").json()
            held = allocations.get("allocations") or {}
            now = time.monotonic()
            if held and first_seen is None:
                first_seen = now
                resources = {rc: n for alloc in held.values() for rc, n in alloc.get("resources", {}).items()}
                providers = len(held)
            if first_seen is not None and not held:
                self.violation("placement-allocations-leak", server_id,
                               f"deleted, yet Placement held {resource_text(resources)} on {providers} provider(s) "
                               f"for {now - first_seen:.0f}-{now - started:.0f} s after it was gone (healed since)")
                return
            if self._finishing:
                deadline = min(deadline, started + FINAL_ALLOCATION_LOOK)
            if now >= deadline:
                if first_seen is not None:
                    self.violation("placement-allocations-leak", server_id,
                                   f"deleted, yet Placement still holds {resource_text(resources)} on "
                                   f"{providers} provider(s) {now - started:.0f} s later")
                return
            # often while a late PUT is likely, then now and then until the periodic heal
            pause = opts.status_poll_interval if now - started < 5 else max(opts.status_poll_interval, 10.0)
            gevent.sleep(min(pause, max(0.05, deadline - now)))

    def check_migration_allocations_gone(self, server_id: str, migration: str) -> None:
        """A resized server is being deleted: Placement must free what its migration held (the
        source host's allocation) within the bound. Nova frees it asynchronously, so only what
        is still held at the end of the bound is reported: a server deleted mid-resize can leave
        it for good (nova-compute only logs "has allocations against this compute host but is
        not found in the database")."""
        admin = self.admin()
        if admin is None:
            return
        started = time.monotonic()
        deadline = started + self.options.invariant_allocation_timeout
        try:
            while True:
                held = _placement(admin).get(f"/allocations/{migration}",
                                             name="placement GET /allocations/{id} (invariant)").json()
                held = held.get("allocations") or {}
                now = time.monotonic()
                if not held:
                    return
                if self._finishing:
                    deadline = min(deadline, started + FINAL_MIGRATION_LOOK)
                if now >= deadline:
                    resources = {rc: n for alloc in held.values() for rc, n in alloc.get("resources", {}).items()}
                    self.violation("placement-allocations-leak", migration,
                                   f"migration of server {server_id} (its resize): Placement still holds "
                                   f"{resource_text(resources)} on {len(held)} provider(s) {now - started:.0f} s "
                                   f"after the server's DELETE", self.request_ids(server_id))
                    return
                gevent.sleep(min(max(self.options.status_poll_interval, 2.0), max(0.05, deadline - now)))
        except ApiError as exc:   # the failed read is already a failed request row
            LOG.warning("novastress: could not follow the allocations of migration %s: %s", migration, exc)

    def scan(self, servers: list[dict], now: float | None = None) -> None:
        """Stuck task states and ERROR servers without a fault among these server views."""
        now = time.monotonic() if now is None else now
        limit = self.options.invariant_task_state_timeout
        live = set()
        for server in servers:
            server_id = server["id"]
            live.add(server_id)
            task = server.get("OS-EXT-STS:task_state")
            if error_without_fault(server):
                self.violation("error-without-fault", server_id, "ERROR with no fault to say why")
            if task in TRANSITIONAL:
                seen = self._seen_task.get(server_id)
                if seen is None or seen[0] != task:
                    self._seen_task[server_id] = (task, now)
                elif now - seen[1] > limit:
                    self.violation("task-state-stuck", server_id,
                                   f"{server.get('status')} in task_state {task} for more than {limit:g} s")
            else:
                self._seen_task.pop(server_id, None)
        for server_id in [s for s in self._seen_task if s not in live]:
            del self._seen_task[server_id]

    def run_servers(self, client) -> list[dict]:
        """The run's servers (`<prefix>-<run id>-*`) as the client sees them."""
        state = self.state
        prefix = f"{state.prefix}-{state.run_id}-"
        servers = client.compute.get("/servers/detail", params={"name": f"^{re.escape(prefix)}"},
                                     name="compute GET /servers/detail?name (invariant)").json()["servers"]
        return [s for s in servers if s.get("name", "").startswith(prefix)]

    def start_scanner(self) -> None:
        if self._scanner is None or self._scanner.dead:
            self._scanner = gevent.spawn(self._scan_loop)

    def _scan_loop(self) -> None:
        while True:
            gevent.sleep(self.options.invariant_check_interval)
            try:
                self.scan(self.run_servers(self.member()))
            except ApiError as exc:
                LOG.warning("novastress: invariant scan failed: %s", exc)

    def stop(self, wait: float) -> None:
        """End the scanner; give the pending delete checks up to `wait` seconds to finish (the
        allocation checks take a last look instead of their whole window)."""
        self._finishing = True
        if self._scanner is not None:
            self._scanner.kill(block=False)
            self._scanner = None
        pending = len(self._watchers)
        if pending:
            # the load has stopped; say what the run still waits for, and for how long at most
            LOG.info("novastress: load stopped; following %d deleted server(s) for the invariant checks, up to "
                     "%g s (--invariant-delete-timeout + --invariant-allocation-timeout)", pending, wait)
        self._watchers.join(timeout=wait)
        self._watchers.kill(block=False)

    # -- after the load ------------------------------------------------------------------
    def settle(self, client, timeout: float) -> list[dict]:
        """Wait (bounded) until no server of the project is in a transitional task_state."""
        deadline = time.monotonic() + timeout
        announced = False
        while True:
            servers = client.compute.get("/servers/detail", name="compute GET /servers/detail (invariant)"
                                         ).json()["servers"]
            # a lost delete already reported never settles: no use waiting for it
            busy = [s for s in servers if (s.get("OS-EXT-STS:task_state") in TRANSITIONAL
                                           or s.get("status") == "BUILD")
                    and ("server-not-deleted", s["id"]) not in self._reported]
            if not busy or time.monotonic() >= deadline:
                return servers
            if not announced:
                announced = True
                LOG.info("novastress: waiting up to %g s for %d server(s) to settle before the end-of-run "
                         "invariant checks (--invariant-settle-timeout)", timeout, len(busy))
            gevent.sleep(self.options.status_poll_interval)

    def end_checks(self) -> None:
        """Once settled: quota usage = live servers; provider usages = sum of live flavors; quota step."""
        opts = self.options
        member = self.member()
        try:
            servers = self.settle(member, opts.invariant_settle_timeout)
            self.scan(servers)
            self.check_quota_usage(member, servers)
            admin = self.admin()
            if admin is not None:
                self.check_provider_usages(admin)
                if opts.quota_step > 0:
                    self.quota_step(member, admin, opts.quota_step)
        except ApiError as exc:
            LOG.error("novastress: the end-of-run invariant checks could not finish: %s", exc)

    def check_quota_usage(self, member, servers: list[dict]) -> None:
        project_id = member.session.get_project_id()
        in_use = self._in_use(member, project_id)
        if in_use != len(servers):
            self.violation("quota-usage-mismatch", project_id,
                           f"quota usage counts {in_use} instances, the project has {len(servers)} servers",
                           request_ids=[])

    def check_provider_usages(self, admin) -> None:
        """Every provider's usage equals the flavors of the live servers on its host."""
        flavors = {f["id"]: f for f in admin.compute.get(
            "/flavors/detail", params={"is_public": "None"},
            name="compute GET /flavors/detail (invariant)").json()["flavors"]}
        servers = admin.compute.get("/servers/detail", params={"all_tenants": "1"},
                                    name="compute GET /servers/detail?all_tenants (invariant)").json()["servers"]
        live = {s["id"] for s in servers}
        # a live server's resize: the source host's allocation is its migration's (Nova 2.59+ names it)
        migrations = {migration for s in servers if s.get("status") in MOVING
                      for migration in _migration_uuids(admin, s["id"])}
        expected: dict[str, dict[str, int]] = {}
        for server in servers:
            host = server.get("OS-EXT-SRV-ATTR:host")
            flavor = flavors.get(str((server.get("flavor") or {}).get("id")))
            if not host or flavor is None or server.get("status") == "SHELVED_OFFLOADED":
                continue
            used = expected.setdefault(host, {"VCPU": 0, "MEMORY_MB": 0, "DISK_GB": 0})
            used["VCPU"] += flavor.get("vcpus", 0)
            used["MEMORY_MB"] += flavor.get("ram", 0)
            used["DISK_GB"] += flavor.get("disk", 0)
        placement = _placement(admin)
        index = request_index(self.environment)
        providers = placement.get("/resource_providers", name="placement GET /resource_providers (invariant)"
                                  ).json()["resource_providers"]
        for provider in providers:
            rp = provider["uuid"]
            allocations = placement.get(f"/resource_providers/{rp}/allocations",
                                        name="placement GET /resource_providers/{id}/allocations (invariant)"
                                        ).json()["allocations"]
            # what the provider holds beyond its live servers, already explained: a live resize's
            # source allocation, or a leak reported here (counted once, not again as a usage error)
            explained = {"VCPU": 0, "MEMORY_MB": 0, "DISK_GB": 0}
            for consumer, held in allocations.items():
                # a consumer this run touched that is no server any more (or the migration of a
                # resized server the run deleted, should its own check not have ended): leaked
                server_id = self._migration_of.get(consumer)
                leaked = consumer not in migrations and consumer not in live and bool(
                    server_id or consumer in self._touches or index.lookup(consumer))
                if not leaked and consumer not in migrations:
                    continue
                for rc, amount in held.get("resources", {}).items():
                    explained[rc] = explained.get(rc, 0) + amount
                if not leaked:
                    continue
                what = resource_text(held.get("resources", {}))
                if server_id:
                    self.violation("placement-allocations-leak", consumer,
                                   f"migration of server {server_id} (its resize): Placement still holds {what} "
                                   f"on {provider['name']} at the end of the run", self.request_ids(server_id))
                else:
                    self.violation("placement-allocations-leak", consumer,
                                   f"gone, yet Placement still holds {what} on {provider['name']}")
            usages = placement.get(f"/resource_providers/{rp}/usages",
                                   name="placement GET /resource_providers/{id}/usages (invariant)"
                                   ).json()["usages"]
            want = {rc: expected.get(provider["name"], {}).get(rc, 0) + explained.get(rc, 0) for rc in explained}
            wrong = {rc: (usages.get(rc, 0), want.get(rc, 0)) for rc in ("VCPU", "MEMORY_MB", "DISK_GB")
                     if usages.get(rc, 0) != want.get(rc, 0)}
            if wrong:
                self.violation("resource-provider-usage", rp,
                               f"{provider['name']}: usages " + ", ".join(
                                   f"{rc} {have} != {need} of its live servers" for rc, (have, need) in wrong.items()),
                               request_ids=[])

    def quota_step(self, member, admin, headroom: int) -> None:
        """Set the instance quota to usage + headroom, boot headroom + 2 at once, check, restore."""
        state, opts = self.state, self.options
        project_id = member.session.get_project_id()
        original = admin.compute.get(f"/os-quota-sets/{project_id}",
                                     name="compute GET /os-quota-sets/{id} (quota step)").json()["quota_set"]
        before = self._in_use(member, project_id)
        limit = before + headroom
        record = ActionRecord("quota_step", "invariants", state.worker, f"req-{uuid.uuid4()}",
                              expected_log={r"TooManyInstances|Quota exceeded for instances":
                                            "Nova's conductor re-check refusing racing boots over the quota"})
        request_index(self.environment).add(record)
        admin.compute.request("PUT", f"/os-quota-sets/{project_id}", json={"quota_set": {"instances": limit}},
                              name="compute PUT /os-quota-sets/{id} (quota step)")
        accepted: list[str] = []
        member.action = record
        try:
            def boot(number: int) -> None:
                body = _boot_body(state, f"{state.prefix}-{state.run_id}-quota-{number}-server")
                response = member.compute.post("/servers", json={"server": body}, expect=(202, 403),
                                               name="compute POST /servers (quota step)")
                if response.status_code == 202:
                    accepted.append(response.json()["server"]["id"])
            joined([spawn_kept(boot, n) for n in range(headroom + 2)], opts.request_timeout)
            for server_id in accepted:
                self.touched(server_id, record.global_request_id)
                record.resource_ids.append(server_id)
            request_index(self.environment).touch(record)
            servers = self.settle(member, opts.invariant_settle_timeout)
            ids = [record.global_request_id, *record.request_ids]
            # Nova accepts racing boots and its conductor's re-check puts the excess in ERROR:
            # more accepted boots than the limit is documented behaviour. The quota is broken
            # when more servers than the limit stay usable, or when the usage is still above it
            # once the ERROR ones are gone.
            usable = [s for s in servers if s.get("status") != "ERROR"]
            if len(usable) > limit:
                self.violation("quota-exceeded", project_id,
                               f"instance quota {limit}: {len(accepted)} of {headroom + 2} concurrent boots "
                               f"accepted, {len(usable)} servers usable after settling", ids)
            rejected = [s["id"] for s in servers if s.get("status") == "ERROR" and s["id"] in accepted]
            for server_id in rejected:
                member.compute.delete(f"/servers/{server_id}", expect=(204, 404),
                                      name="compute DELETE /servers/{id} (quota step)")
            self._wait_gone(member, rejected, opts.invariant_delete_timeout)
            in_use = self._in_use(member, project_id)
            if in_use > limit:
                self.violation("quota-exceeded", project_id,
                               f"instance quota {limit}: usage {in_use} once the {len(rejected)} boot(s) the "
                               f"re-check put in ERROR were deleted", ids)
        finally:
            for server_id in accepted:
                try:
                    member.compute.delete(f"/servers/{server_id}", expect=(204, 404),
                                          name="compute DELETE /servers/{id} (quota step)")
                except ApiError as exc:
                    LOG.error("novastress: quota step could not delete %s: %s", server_id, exc)
            self._wait_gone(member, accepted, opts.invariant_delete_timeout)
            member.action = None
            admin.compute.request("PUT", f"/os-quota-sets/{project_id}",
                                  json={"quota_set": {"instances": original["instances"]}},
                                  name="compute PUT /os-quota-sets/{id} (quota step)")
        after = self._in_use(member, project_id)
        if after != before:
            self.violation("quota-usage-mismatch", project_id,
                           f"quota usage {after} after the quota step deleted its servers, {before} before",
                           [record.global_request_id, *record.request_ids])

    def _in_use(self, member, project_id: str) -> int:
        return member.compute.get(f"/os-quota-sets/{project_id}/detail",
                                  name="compute GET /os-quota-sets/{id}/detail (invariant)"
                                  ).json()["quota_set"]["instances"]["in_use"]

    def _wait_gone(self, client, server_ids: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = list(server_ids)
        while pending:
            pending = [s for s in pending if _show(client, s).status_code == 200]
            if not pending:
                return
            if time.monotonic() >= deadline:
                for server_id in pending:
                    self.state.leaks.append(Leak("server", "quota step server", server_id,
                                                 f"not gone {timeout:g} s after its DELETE"))
                return
            gevent.sleep(self.options.status_poll_interval)

    def check_group(self, policy: str, group_id: str, members: list[dict], host_count: int | None,
                    request_ids: list[str]) -> None:
        """A server group's members obey its policy; with the host count known, the right ones failed."""
        active = [m for m in members if m.get("status") == "ACTIVE"]
        hosts = [m.get("hostId") or m.get("OS-EXT-SRV-ATTR:host") for m in active]
        if policy == "affinity" and len(set(hosts)) > 1:
            self.violation("server-group-policy", group_id,
                           f"affinity group spread over {len(set(hosts))} hosts", request_ids)
        if policy == "anti-affinity" and len(set(hosts)) < len(hosts):
            self.violation("server-group-policy", group_id,
                           f"anti-affinity group has {len(hosts) - len(set(hosts))} members sharing a host",
                           request_ids)
        if host_count is None:
            return
        wanted = len(members) if policy == "affinity" else min(len(members), host_count)
        if len(active) != wanted:
            self.violation("server-group-host-count", group_id,
                           f"{len(active)} of {len(members)} {policy} boots ACTIVE on {host_count} hosts, "
                           f"expected {wanted}", request_ids)


def _trim(kept: dict) -> list:
    """Forget the oldest entries past TOUCHES_KEPT (a long run must not grow without bound); their keys."""
    forgotten = []
    while len(kept) > TOUCHES_KEPT:
        forgotten.append(key := next(iter(kept)))
        del kept[key]
    return forgotten


def invariants(environment: Any) -> Invariants:
    """The Invariants of this Environment, created on first use."""
    state = run_state(environment)
    if state.invariants is None:
        state.invariants = Invariants(environment)
    return state.invariants


def _boot_body(state, name: str) -> dict:
    boot = state.boot_args()
    body: dict[str, Any] = {"name": name, "imageRef": boot.image_id, "flavorRef": boot.flavor_id}
    if boot.networks != "none" or microversion_at_least(state.options.compute_microversion, 2, 37):
        body["networks"] = boot.networks
    return body


def _show(client, server_id: str):
    return client.compute.get(f"/servers/{server_id}", expect=(200, 404), name="compute GET /servers/{id} (invariant)")


def _placement(client):
    """Placement from the catalog, at a microversion that shows consumer generations."""
    return client.service("placement", "placement", PLACEMENT_VERSION)


def _migration_uuids(admin, server_id: str) -> list[str]:
    """The uuids of a server's migrations (compute 2.59+; none on an older cloud)."""
    compute = admin.service("compute", "compute", {"OpenStack-API-Version": "compute 2.59"})
    response = compute.get("/os-migrations", params={"instance_uuid": server_id},
                           expect=(200, 400, 403, 404, 406), name="compute GET /os-migrations (invariant)")
    if response.status_code != 200:
        return []
    return [m["uuid"] for m in response.json().get("migrations", []) if m.get("uuid")]


def error_without_fault(server: dict) -> bool:
    """ERROR, settled, and no instance fault to tell its owner why."""
    return server.get("status") == "ERROR" and not server.get("fault") and server.get("OS-EXT-STS:task_state") is None


def resource_text(resources: dict) -> str:
    """`DISK_GB=1, MEMORY_MB=512, VCPU=1`, or `nothing`."""
    return ", ".join(f"{rc}={amount}" for rc, amount in sorted(resources.items())) or "nothing"


def _admin_client(state):
    """An OpenStackClient with admin credentials (--os-admin-*, else the run's own) whose token
    really has the admin role and whose catalog lists Placement; None otherwise (said once)."""
    checks = invariants(state.environment)
    try:
        target = state.admin_target()
        client = OpenStackClient(state, target, "invariants-admin")
        roles = client.roles()
    except Exception as exc:  # bad admin credentials: the run goes on without the admin checks
        checks.skip_admin_checks(f"the admin credentials do not work ({str(exc).splitlines()[0][:160]})")
        return None
    if "admin" not in roles:
        checks.skip_admin_checks(f"no admin credentials ({target.who} has roles {', '.join(sorted(roles))}; "
                                 f"give --os-admin-username/--os-admin-password)")
        return None
    if not client.has_service("placement"):
        checks.skip_admin_checks("no placement service in the catalog")
        return None
    return client


# -- listeners: active when a storm user class is in the run -------------------------------
def _ours(environment) -> bool:
    opts = environment.parsed_options
    if opts is None or not hasattr(opts, "invariant_delete_timeout"):
        return False
    # a storm user class, or a scenario entry whose task is the storm
    return any(getattr(cls, "invariants", False) or any(getattr(t, "invariants", False) for t in cls.tasks or [])
               for cls in environment.user_classes or [])


def _on_init(environment, runner=None, **_kwargs) -> None:
    if not _ours(environment):
        return
    state = run_state(environment)
    state.use_embedded_admin()      # the admin checks run against the embedded cloud too
    if not isinstance(runner, WorkerRunner) and state.target is not None:
        invariants(environment).admin()  # says now, once, whether the admin checks will run


def _on_test_start(environment, **_kwargs) -> None:
    if not _ours(environment):
        return
    checks = invariants(environment)
    checks.active = True
    checks._finishing = False
    checks.start_scanner()


def _on_test_stop(environment, **_kwargs) -> None:
    checks = run_state(environment).invariants
    if checks is None or not checks.active:
        return
    checks.active = False
    opts = environment.parsed_options
    checks.stop(wait=opts.invariant_delete_timeout + opts.invariant_allocation_timeout)
    if not isinstance(environment.runner, WorkerRunner):
        checks.end_checks()


def register(events) -> None:
    """The checks' listeners (plugin.py calls this after its own: its test_stop marks the run
    ending first, the sweep stays last)."""
    events.init.add_listener(_on_init)
    events.test_start.add_listener(_on_test_start)
    events.test_stop.add_listener(_on_test_stop)
