"""The asynchronous state engine of the embedded cloud's Nova: what its scheduler, conductor
and compute services do after the API has answered.

A step runs later on a gevent timer (`_after`, on `cloud.later`) unless a newer change of the
server (a delete, another action) bumped its epoch; a chaos freeze or a service that is down
holds it. The steps move a server's vm_state and task_state as Nova does: the build (schedule,
claim, spawn), the delete, the end of each action (resize and its confirm or revert, shelve and
unshelve, the snapshot's upload), a volume's attach; each writes its log lines with the context
of the API call that caused it and the events of its instance action.

`ComputeEngine` is a mixin of `Compute` (compute.py).
"""
from __future__ import annotations

import hashlib
import time
import uuid

from .compute_model import ActionRule, Flavor, InstanceAction, Migration, Server
from .compute_races import (CONDUCTOR_FRAMES, MESSAGING_TIMEOUT_FRAMES, QUOTA_RECHECK_FRAMES, RACE_WINDOW,
                            REMOTE_SCHEDULE_FRAMES, _remote_traceback)
from .logs import LogContext, ServiceLog
from .service import Call, now_iso

FROZEN_RECHECK = 0.25  # seconds between looks at a server held by a chaos freeze rule
DELETED_KEPT = 5000  # deleted servers remembered for changes-since
NO_VALID_HOST = "No valid host was found. There are not enough hosts available."


class ComputeEngine:
    """The steps after the API's answer, and the helpers every step uses."""

    # -- steps, instance actions, logs ----------------------------------------
    def _after(self, server: Server, seconds: float, step, *args) -> None:
        """Run a transition later unless a newer one (delete, another action) replaced it."""
        epoch = server.epoch

        def run() -> None:
            if server.epoch == epoch and not server.deleted:
                if self.cloud.chaos.frozen("compute", server.id, server.name) or self.cloud.processes.holds(server):
                    # held by a chaos freeze rule, or waiting for a service that is down or frozen
                    # (processes.py): look again later (a delete bumps the epoch)
                    self.cloud.later(FROZEN_RECHECK, run)
                    return
                step(*args)
                self._guest_sync(server)  # every build step and action ends here
        self.cloud.later(seconds, run)

    def _guest_sync(self, server: Server) -> None:
        """Let the simulated guest follow the server: SSH on its floating IPs, its disks."""
        guests = getattr(self.cloud, "guests", None)
        if guests is not None:
            guests.sync(server.id)

    def _record_action(self, call: Call, server: Server, action: str) -> InstanceAction:
        now = time.time()
        record = InstanceAction(action, call.request_id, call.token.user_id, call.token.project_id,
                                now, now)
        server.actions.append(record)
        return record

    @staticmethod
    def _event(record: InstanceAction, event: str, host: str | None, result: str = "Success",
               traceback: str | None = None, details: str | None = None, start: float | None = None) -> None:
        """An event of the action, finished now; it started with the action unless `start` says when."""
        now = time.time()
        record.events.append({"event": event, "start_time": start or record.start_time, "finish_time": now,
                              "result": result, "host": host, "traceback": traceback,
                              "details": details})
        record.updated_at = now
        if result != "Success":
            record.message = "Error"

    def _compute_log(self, host: str | None) -> ServiceLog:
        return self.cloud.logs.compute(host or self.cloud.compute_hosts[0])

    def _host_id(self, project_id: str, host: str | None) -> str:
        return hashlib.sha224((project_id + host).encode()).hexdigest() if host else ""

    # -- scheduler, conductor, compute: the build ------------------------------
    def _fits(self, host: str, flavor: Flavor) -> bool:
        config = self.cloud.config
        used = self.host_usage.get(host, {})
        return (used.get("VCPU", 0) + flavor.vcpus <= config.host_capacity_vcpus
                and used.get("MEMORY_MB", 0) + flavor.ram <= config.host_capacity_ram_mb)

    def _candidate_hosts(self, server: Server, exclude: str | None = None) -> list[str]:
        hosts = [h for h in self.cloud.compute_hosts if h != exclude]
        for group_id in server.server_groups:
            group = self.server_groups.get(group_id)
            if group is None:
                continue
            peers = {self.servers[m].host for m in group.members
                     if m != server.id and m in self.servers and self.servers[m].host}
            if group.policy == "affinity" and peers:
                hosts = [h for h in hosts if h in peers]
            elif group.policy == "anti-affinity":
                hosts = [h for h in hosts if h not in peers]
        # spread: the emptiest host first, as the RAM weigher does
        return sorted(hosts, key=lambda h: (self.host_usage.get(h, {}).get("MEMORY_MB", 0),
                                            self.cloud.compute_hosts.index(h)))

    def _claim(self, server: Server, host: str, flavor: Flavor) -> bool:
        claim = getattr(self.cloud.placement, "claim", None)
        if claim is not None:
            if not claim(server.id, host, flavor.resources, server.project_id, server.user_id):
                return False
        elif not self._fits(host, flavor):
            return False
        used = self.host_usage.setdefault(host, {"VCPU": 0, "MEMORY_MB": 0, "DISK_GB": 0, "instances": 0})
        for resource, amount in flavor.resources.items():
            used[resource] += amount
        used["instances"] += 1
        return True

    def _release_host(self, server: Server, host: str | None, flavor: Flavor, placement: bool = True) -> None:
        if placement:
            free = getattr(self.cloud.placement, "free", None)
            if free is not None:
                free(server.id)
        used = self.host_usage.get(host or "")
        if used:
            for resource, amount in flavor.resources.items():
                used[resource] = max(0, used[resource] - amount)
            used["instances"] = max(0, used["instances"] - 1)

    def _schedule(self, server: Server, build: float) -> None:
        accepted = self.scheduling.pop(server.id, server.scheduled_at)
        ctx = server.context
        # another boot accepted at nearly the same time is still being scheduled: both
        # schedulers saw the same free capacity, and placement lets only one claim win
        rival = next((self.servers.get(other) for other, at in self.scheduling.items()
                      if abs(at - accepted) <= RACE_WINDOW), None)
        if rival is not None and self.cloud.faults.roll("scheduler-capacity-race"):
            self._no_valid_host(server, race_with=rival)
            return
        host = self._group_burst_host(server)
        if host is None:
            host = next((h for h in self._candidate_hosts(server) if self._claim(server, h, server.flavor)), None)
        if host is None:
            self._no_valid_host(server)
            return
        # the instance now exists in the cell: boots that raced past nova-api's check are over
        over_quota = self._recheck_quota(server)
        if over_quota is not None and not self._quota_recheck_skipped(server, over_quota):
            self._quota_recheck_failed(server, host, over_quota)
            return
        server.host = host
        server.host_id = self._host_id(server.project_id, host)
        if server.task_state != "deleting":
            server.task_state = None
        server.touch()
        self.cloud.logs.scheduler.write(
            "INFO", "nova.scheduler.manager", f"Selected host {host} (node {host}) for the instance",
            ctx, instance=server.id)
        self._compute_log(host).write("INFO", "nova.compute.claims", f"Claim successful on node {host}",
                                      ctx, instance=server.id)
        server.handed_to_compute = time.time()     # when the compute's build event starts
        self._after(server, build * 0.2, self._spawn, server, build)

    def _no_valid_host(self, server: Server, race_with: Server | None = None) -> None:
        ctx = server.context
        if race_with is not None:
            provider = uuid.uuid5(uuid.NAMESPACE_DNS, race_with.host or self.cloud.compute_hosts[0])
            self.cloud.logs.scheduler.write(
                "WARNING", "nova.scheduler.client.report",
                f"Failed to save allocation for {server.id}. Got HTTP 409: {{\"errors\": [{{\"status\": 409, "
                f"\"title\": \"Conflict\", \"detail\": \"There was a conflict when trying to complete your "
                f"request.\\n\\n consumer generation conflict - expected null but got 1  \", \"code\": "
                f"\"placement.concurrent_update\", \"request_id\": \"req-{uuid.uuid4()}\"}}]}} "
                f"(resource provider {provider})", ctx)
        remote = _remote_traceback(REMOTE_SCHEDULE_FRAMES, f"nova.exception.NoValidHost: {NO_VALID_HOST}")
        local = ["Traceback (most recent call last):"] + CONDUCTOR_FRAMES + [
            f"nova.exception_Remote.NoValidHost_Remote: {NO_VALID_HOST}"] + remote.splitlines() + [""]
        self.cloud.logs.conductor.write(
            "ERROR", "nova.conductor.manager",
            f"Failed to schedule instances: nova.exception_Remote.NoValidHost_Remote: {NO_VALID_HOST}\n"
            + remote, ctx, traceback=local)
        self.cloud.logs.conductor.write(
            "WARNING", "nova.scheduler.utils",
            f"Failed to compute_task_build_instances: {NO_VALID_HOST}", ctx, instance=server.id)
        self.cloud.logs.conductor.write(
            "WARNING", "nova.scheduler.utils", "Setting instance to ERROR state.", ctx, instance=server.id)
        details = "".join(line + "\n" for line in CONDUCTOR_FRAMES)
        self._set_error(server, NO_VALID_HOST, details)
        if server.actions:
            self._event(server.actions[0], "conductor_schedule_and_build_instances", None, "Error",
                        details, NO_VALID_HOST)
        if race_with is not None:
            self.cloud.faults.fired(
                "scheduler-capacity-race", server.boot_ids + race_with.boot_ids, server.id,
                f"boot of {server.id} lost the claim race against {race_with.id}: NoValidHost",
                log="nova-conductor.log")

    def _quota_recheck_failed(self, server: Server, host: str, message: str) -> None:
        """The conductor's re-check refuses the boot: ERROR with Nova's 413 fault, never built.

        As in Nova, the instance keeps its quota usage and its Placement allocations until it
        is deleted; its host's compute never saw it."""
        ctx = server.context
        error = f"nova.exception.TooManyInstances: {message}"
        log = self.cloud.logs.conductor
        log.write("WARNING", "nova.scheduler.utils", f"Failed to compute_task_build_instances: {message}: {error}",
                  ctx)
        log.write("WARNING", "nova.scheduler.utils", f"Setting instance to ERROR state.: {error}", ctx,
                  instance=server.id)
        log.write("ERROR", "oslo_messaging.rpc.server", f"Exception during message handling: {error}", ctx,
                  traceback=["Traceback (most recent call last):", *QUOTA_RECHECK_FRAMES, error])
        self._release_host(server, host, server.flavor, placement=False)
        # the conductor records the create action only for instances it goes on to build
        server.actions = [record for record in server.actions if record.action != "create"]
        self._set_error(server, message, "", code=413)

    def _set_error(self, server: Server, message: str, details: str, code: int = 500) -> None:
        server.vm_state = "error"
        server.task_state = None
        server.fault = {"code": code, "created": now_iso(), "message": message, "details": details}
        server.touch()

    def _spawn(self, server: Server, build: float) -> None:
        if server.task_state != "deleting":
            server.task_state = "spawning"
        server.touch()
        allocate = getattr(self.cloud.network, "allocate_port", None)
        if allocate is not None and server.networks:
            for network_id in server.networks:
                try:
                    server.ports.append(allocate(server.project_id, network_id, server.id, server.boot_ids))
                except KeyError:
                    self._set_error(server, f"Build of instance {server.id} aborted: Network {network_id} "
                                            "could not be found.", "", code=500)
                    self._compute_log(server.host).write(
                        "ERROR", "nova.compute.manager",
                        f"Build of instance {server.id} aborted: Network {network_id} could not be found.",
                        server.context, instance=server.id)
                    return
        self._after(server, build * 0.5, self._spawned, server, build)

    def _spawned(self, server: Server, build: float) -> None:
        log = self._compute_log(server.host)
        if server.lost_delete is not None and server.task_state == "deleting":
            self._delete_during_build(server)
            return
        now = time.time()
        server.vm_state = "active"
        server.task_state = None
        server.power_state = 1
        server.launched_at = now
        server.touch()
        log.write("INFO", "nova.compute.manager", "Took 0.00 seconds to spawn the instance on the hypervisor.",
                  server.context, instance=server.id)
        log.write("INFO", "nova.compute.manager", f"Took {now - server.created:.2f} seconds to build instance.",
                  server.context, instance=server.id)
        if server.actions:
            # a successful boot's one event, as in Nova (the conductor records one only on failure)
            self._event(server.actions[0], "compute__do_build_and_run_instance", server.host,
                        start=server.handed_to_compute)

    # -- the delete -----------------------------------------------------------
    def drop_delete(self, server: Server, ctx: LogContext | None, ids: list[str]) -> None:
        """A conductor died under the delete's RPC: after rpc_response_timeout the compute gives up,
        reverts the task state and the server is back in its vm_state, while every DELETE meanwhile
        was ignored as "already deleting" (seen on Nova 34 with nova-conductor restarted)."""
        server.delete_dropped = (ctx, ids)
        self.cloud.later(self.cloud.delay("rpc_timeout"), self._delete_reverted, server)

    def _delete_reverted(self, server: Server) -> None:
        if server.deleted or server.delete_dropped is None:
            return
        ctx, _ids = server.delete_dropped
        server.delete_dropped = None
        message = f"Timed out waiting for a reply to message ID {uuid.uuid4().hex}"
        log = self._compute_log(server.host)
        log.write("ERROR", "oslo_messaging.rpc.server",
                  f"Exception during message handling: oslo_messaging.exceptions.MessagingTimeout: {message}",
                  ctx, traceback=["Traceback (most recent call last):", *MESSAGING_TIMEOUT_FRAMES,
                                  f"oslo_messaging.exceptions.MessagingTimeout: {message}"])
        log.write("INFO", "nova.compute.manager", "Successfully reverted task state from deleting on failure "
                  "for instance.", ctx, instance=server.id)
        server.task_state = None
        server.touch()

    def _deleted(self, server: Server, ctx: LogContext, ids: list[str], record: InstanceAction) -> None:
        if server.deleted or server.delete_dropped is not None:
            return
        host = server.host
        log = self._compute_log(host)
        if host:
            log.write("INFO", "nova.compute.manager",
                      "Took 0.00 seconds to destroy the instance on the hypervisor.", ctx, instance=server.id)
        if server.snapshot is not None:
            self._snapshot_disappeared(server, host)
        self._drop_shelved_image(server)
        detach = getattr(self.cloud.volume, "detach", None)
        for volume_id in list(server.volumes):
            if volume_id in server.leaked_volumes:
                self._leak_volume(server, volume_id)
            elif detach is not None:
                detach(volume_id, server.id, ids)
        release = getattr(self.cloud.network, "release_ports", None)
        if release is not None:
            release(server.id, ids)
        if host:
            self._compute_log(host).write("INFO", "nova.compute.manager",
                                          f"Took 0.0{len(server.ports)} seconds to deallocate network "
                                          "for instance.", None, instance=server.id)
        self._migration_deleted(server, ids)
        # an unshelve in flight has claimed a host while the server is still shelved_offloaded
        if server.vm_state != "shelved_offloaded" or host:
            self._release_host(server, host, server.flavor, placement=not server.allocations_leak)
        if not server.allocations_leak:
            (log if host else self.cloud.logs.conductor).write(
                "INFO", "nova.scheduler.client.report", f"Deleted allocations for instance {server.id}", ctx)
        self._event(record, "compute_terminate_instance", host)
        # a boot in the same project landed while this delete was pending: both lock the
        # project's usage row, and the delete's quota commit loses the deadlock
        boot_time, boot_ids = self.last_create.get(server.project_id, (0.0, []))
        drift = boot_time > server.delete_started and self.cloud.faults.roll("quota-usage-drift")
        self._charge(server.project_id, server.flavor, -1, instances=not drift)
        if drift:
            self._quota_commit_failed(server, log if host else self.cloud.logs.conductor, ctx, ids, boot_ids)
        now = time.time()
        server.deleted = True
        server.vm_state = "deleted"
        server.task_state = None
        server.power_state = 0
        server.terminated_at = now
        server.touch()
        server.epoch += 1
        self.servers.pop(server.id, None)
        self.by_project.get(server.project_id, {}).pop(server.id, None)
        for group_id in server.server_groups:
            group = self.server_groups.get(group_id)
            if group and server.id in group.members:
                group.members.remove(server.id)
        self.deleted[server.id] = server
        while len(self.deleted) > DELETED_KEPT:
            self.deleted.popitem(last=False)
        self._guest_sync(server)
        if server.preempted is not None:
            self._action_preempted(server)
        if server.unshelve_race is not None:
            self._unshelve_recreates_allocations(server)

    # -- server actions: start and finish -------------------------------------
    def _start(self, call: Call, server: Server, action: str, task_state: str, event: str, step, *args,
               seconds: float | None = None) -> InstanceAction:
        record = self._record_action(call, server, action)
        server.last_change = (time.monotonic(), call.log_context, call.ids, task_state, action, record)
        server.task_state = task_state
        server.epoch += 1
        server.touch()
        self._guest_sync(server)  # e.g. a reboot takes the guest off the network until it is done
        ctx = call.log_context
        self._after(server, self.cloud.delay("action") if seconds is None else seconds,
                    step, server, record, event, ctx, *args)
        return record

    def _finish_simple(self, server: Server, record: InstanceAction, event: str, ctx: LogContext,
                       rule: ActionRule) -> None:
        host = server.host
        if rule.end_vm_state == "shelved_offloaded":
            if server.shelved_image is not None and self.cloud.config.snapshots_finish:
                image_id, ids = server.shelved_image
                if self.cloud.image.snapshot_saving(image_id) is not None:
                    base = self.cloud.image.data.get(server.image_id, b"") if server.image_id else b""
                    self.cloud.image.snapshot_uploaded(image_id, server.id.encode() + base, ids)
            self._compute_log(host).write("INFO", "nova.compute.manager", "Shelve offloading", ctx,
                                          instance=server.id)
            self._release_host(server, host, server.flavor)
            server.host = None
            server.host_id = ""
        if rule.name == "unshelve":
            self._drop_shelved_image(server)
        server.vm_state = rule.end_vm_state
        server.task_state = None
        server.power_state = rule.end_power_state
        server.touch()
        self._event(record, event, host)

    def _unshelve_spawn(self, server: Server, record: InstanceAction, event: str, ctx: LogContext) -> None:
        host = next((h for h in self._candidate_hosts(server) if self._claim(server, h, server.flavor)), None)
        if host is None:
            server.task_state = None
            server.touch()
            self._event(record, "schedule_instances", None, "Error", None, NO_VALID_HOST)
            self.cloud.logs.conductor.write("WARNING", "nova.scheduler.utils",
                                            f"Failed to compute_task_unshelve_instance: {NO_VALID_HOST}",
                                            ctx, instance=server.id)
            return
        server.host = host
        server.host_id = self._host_id(server.project_id, host)
        server.task_state = "spawning"
        server.touch()
        self._compute_log(host).write("INFO", "nova.compute.claims", f"Claim successful on node {host}",
                                      ctx, instance=server.id)
        self._after(server, self.cloud.delay("action"), self._finish_simple, server, record, event, ctx,
                    ActionRule("unshelve", (), "spawning", "active", 1, event, "unshelve"))

    # -- resize ---------------------------------------------------------------
    def _resize_migrate(self, server: Server, record: InstanceAction, event: str, ctx: LogContext,
                        flavor: Flavor) -> None:
        source = server.host
        move = getattr(self.cloud.placement, "move", None)
        target = None
        for host in self._candidate_hosts(server, exclude=source):
            if move is None and not self._fits(host, flavor):
                continue
            if move is not None and move(server.id, host, flavor.resources) is False:
                continue
            target = host
            break
        if target is None:
            # allow_resize_to_same_host is False: a one-host cloud cannot resize
            self.cloud.logs.scheduler.write("INFO", "nova.scheduler.host_manager",
                                            f"Host filter ignoring hosts: {source}", ctx)
            self.cloud.logs.conductor.write(
                "WARNING", "nova.scheduler.utils", "Failed to compute_task_migrate_server: "
                f"{NO_VALID_HOST}", ctx)
            self.cloud.logs.conductor.write(
                "WARNING", "nova.scheduler.utils", "Setting instance to ACTIVE state.: "
                f"nova.exception_Remote.NoValidHost_Remote: {NO_VALID_HOST}", ctx, instance=server.id)
            server.task_state = None
            server.touch()
            self._event(record, "cold_migrate", source, "Error", None,
                        "No valid host was found. No valid host found for resize")
            self._event(record, "conductor_migrate_server", source, "Error", None,
                        "No valid host was found. No valid host found for resize")
            return
        self._migration_counter += 1
        now = time.time()
        migration = Migration(self._migration_counter, str(uuid.uuid4()), server.id, source or "", target,
                              server.flavor, flavor, record.user_id, record.project_id, now, now,
                              request_ids=[i for i in (ctx.global_request_id, ctx.request_id) if i])
        self.migrations.append(migration)
        claim = getattr(self.cloud.placement, "claim", None)
        if move is not None and claim is not None and source:
            # as Nova's migration-based allocations: while the resize lasts, the source host's
            # allocation is the migration's, the server's is on the target
            claim(migration.uuid, source, server.flavor.resources, server.project_id, server.user_id)
        self._release_host(server, source, server.flavor, placement=False)
        if move is None:
            self._claim(server, target, flavor)
        else:
            used = self.host_usage.setdefault(target, {"VCPU": 0, "MEMORY_MB": 0, "DISK_GB": 0, "instances": 0})
            for resource, amount in flavor.resources.items():
                used[resource] += amount
            used["instances"] += 1
        server.migration = migration
        server.old_flavor, server.flavor = server.flavor, flavor
        server.old_host, server.host = source, target
        server.host_id = self._host_id(server.project_id, target)
        self._charge(server.project_id, flavor, +1, instances=False)
        self._charge(server.project_id, server.old_flavor, -1, instances=False)
        server.task_state = "resize_migrated"
        server.touch()
        self._compute_log(target).write("INFO", "nova.compute.claims", f"Claim successful on node {target}",
                                        ctx, instance=server.id)
        self._after(server, self.cloud.delay("action"), self._resize_finish, server, record, event, migration)

    def _resize_finish(self, server: Server, record: InstanceAction, event: str, migration: Migration) -> None:
        server.vm_state = "resized"
        server.task_state = None
        server.touch()
        migration.status = "finished"
        migration.updated_at = time.time()
        self._event(record, "compute_finish_resize", server.host)

    def _confirmed(self, server: Server, record: InstanceAction, event: str, ctx: LogContext) -> None:
        self._end_migration(server)
        if server.migration:
            server.migration.status = "confirmed"
            server.migration.updated_at = time.time()
        server.vm_state = "active"
        server.old_flavor = server.old_host = server.migration = None
        server.touch()
        self._event(record, event, server.host)

    def _reverted(self, server: Server, record: InstanceAction, event: str, ctx: LogContext) -> None:
        new_flavor, new_host = server.flavor, server.host
        old_flavor, old_host = server.old_flavor or new_flavor, server.old_host or new_host
        move = getattr(self.cloud.placement, "move", None)
        self._end_migration(server)
        if move is not None:
            move(server.id, old_host, old_flavor.resources)
        self._release_host(server, new_host, new_flavor, placement=False)
        used = self.host_usage.setdefault(old_host, {"VCPU": 0, "MEMORY_MB": 0, "DISK_GB": 0, "instances": 0})
        for resource, amount in old_flavor.resources.items():
            used[resource] += amount
        used["instances"] += 1
        self._charge(server.project_id, old_flavor, +1, instances=False)
        self._charge(server.project_id, new_flavor, -1, instances=False)
        if server.migration:
            server.migration.status = "reverted"
            server.migration.updated_at = time.time()
        server.flavor, server.host = old_flavor, old_host
        server.host_id = self._host_id(server.project_id, old_host)
        server.vm_state = "active"
        server.task_state = None
        server.old_flavor = server.old_host = server.migration = None
        server.touch()
        self._event(record, event, old_host)

    def _end_migration(self, server: Server) -> None:
        """The migration's allocation on the source host goes: confirmed, reverted or deleted."""
        free = getattr(self.cloud.placement, "free", None)
        if server.migration is not None and free is not None:
            free(server.migration.uuid)

    # -- snapshots (createImage, createBackup, shelve) ---------------------------------
    def _drop_shelved_image(self, server: Server) -> None:
        """The shelved image goes: the server was unshelved or deleted."""
        if server.shelved_image is not None:
            image_id, ids = server.shelved_image
            server.shelved_image = None
            self.cloud.image.discard_snapshot(image_id, ids)

    def _snapshot_pending(self, server: Server, record: InstanceAction, event: str, ctx: LogContext,
                          image_id: str, backup: tuple[str, int] | None = None) -> None:
        if server.task_state != "image_snapshot":   # the compute starts: image_backup, or the API's pending
            log = self._compute_log(server.host)
            log.write("INFO", "nova.compute.manager", "instance snapshotting", ctx, instance=server.id)
            if server.power_state != 1:
                log.write("WARNING", "nova.compute.manager", "trying to snapshot a non-running instance: "
                          f"(state: {server.power_state} expected: 1)", ctx, instance=server.id)
            if server.task_state == "image_snapshot_pending":
                # Nova's snapshot_instance takes it (image_snapshot), then its driver snapshots
                server.task_state = "image_snapshot"
                server.touch()
                self._after(server, self.cloud.delay("action"), self._snapshot_pending, server, record, event, ctx,
                            image_id, backup)
                return
        if self._snapshot_image_gone(server, record, event, ctx, image_id, backup):
            return
        if not self.cloud.config.snapshots_finish:
            # Nova's fake virt driver: the snapshot "succeeds" and nothing is ever uploaded
            self._snapshot_ended(server, record, event, ctx, backup)
            return
        server.task_state = "image_pending_upload"
        server.touch()
        self._after(server, self.cloud.delay("action"), self._snapshot_upload, server, record, event, ctx,
                    image_id, backup)

    def _snapshot_upload(self, server: Server, record: InstanceAction, event: str, ctx: LogContext,
                         image_id: str, backup: tuple[str, int] | None = None) -> None:
        if self._snapshot_image_gone(server, record, event, ctx, image_id, backup):
            return
        server.task_state = "image_uploading"
        server.touch()
        self.cloud.image.snapshot_saving(image_id)
        self._after(server, self.cloud.delay("action"), self._snapshot_done, server, record, event, ctx,
                    image_id, backup)

    def _snapshot_done(self, server: Server, record: InstanceAction, event: str, ctx: LogContext,
                       image_id: str, backup: tuple[str, int] | None = None) -> None:
        if self._snapshot_image_gone(server, record, event, ctx, image_id, backup):
            return
        base = self.cloud.image.data.get(server.image_id, b"") if server.image_id else b""
        ids = server.snapshot[2] if server.snapshot else []
        self.cloud.image.snapshot_uploaded(image_id, server.id.encode() + base, ids)
        started = server.snapshot[3] if server.snapshot else time.monotonic()
        self._compute_log(server.host).write(
            "INFO", "nova.compute.manager", f"Took {time.monotonic() - started:0.2f} seconds to snapshot "
            "the instance on the hypervisor.", ctx, instance=server.id)
        self._snapshot_ended(server, record, event, ctx, backup)

    def _snapshot_image_gone(self, server: Server, record: InstanceAction, event: str, ctx: LogContext,
                             image_id: str, backup: tuple[str, int] | None = None) -> bool:
        """The image was deleted in Glance mid-snapshot: Nova gives up and clears the task state."""
        if self.cloud.image.get_image(image_id) is not None:
            return False
        self._compute_log(server.host).write("WARNING", "nova.compute.manager", "Image not found during snapshot",
                                             ctx, instance=server.id)
        self._snapshot_ended(server, record, event, ctx, backup)
        return True

    def _snapshot_ended(self, server: Server, record: InstanceAction, event: str, ctx: LogContext,
                        backup: tuple[str, int] | None) -> None:
        """The snapshot is over, uploaded or not: a backup then rotates (Nova's backup_instance
        rotates whatever the snapshot did) before the event ends."""
        ids = server.snapshot[2] if server.snapshot else []
        server.snapshot = None
        server.task_state = None
        server.touch()
        if backup is not None:
            self._rotate_backups(server, ctx, ids, *backup)
        self._event(record, event, server.host)

    def _rotate_backups(self, server: Server, ctx: LogContext, ids: list[str], backup_type: str,
                        rotation: int) -> None:
        """Nova's _rotate_backups: the server's images of type backup and this backup_type beyond
        `rotation` are deleted, oldest first (rotation 0: all of them)."""
        backups = self.cloud.image.images_with(server.project_id, {
            "image_type": "backup", "backup_type": backup_type, "instance_uuid": server.id})
        log = self._compute_log(server.host)
        log.write("DEBUG", "nova.compute.manager", f"Found {len(backups)} images (rotation: {rotation})", ctx,
                  instance=server.id)
        excess = backups[:max(0, len(backups) - rotation)]
        if excess:
            log.write("DEBUG", "nova.compute.manager", f"Rotating out {len(excess)} backups", ctx,
                      instance=server.id)
        for image in excess:
            log.write("DEBUG", "nova.compute.manager", f"Deleting image {image['id']}", ctx, instance=server.id)
            self.cloud.image.discard_snapshot(image["id"], ids)

    def _snapshot_disappeared(self, server: Server, host: str | None) -> None:
        """The server was deleted mid-snapshot: nova-compute deletes the partial image."""
        image_id, ctx, ids, _started = server.snapshot
        server.snapshot = None
        image = self.cloud.image.get_image(image_id)
        if image is None or image["status"] == "active":
            return
        self._compute_log(host).write("WARNING", "nova.compute.manager", "Instance disappeared during snapshot",
                                      ctx, instance=server.id)
        self.cloud.image.discard_snapshot(image_id, ids)

    # -- volume attachments ---------------------------------------------------
    def _attached(self, server: Server, volume_id: str, record: InstanceAction) -> None:
        ctx, ids, attachment = server.attaching.pop(volume_id)
        volume_api = self.cloud.volume
        if server.deleted or server.task_state == "deleting":
            if volume_id in server.leaked_volumes:
                volume_api.attach(volume_id, server.id, attachment["device"], server.host or "", ids)
                server.volumes[volume_id] = attachment
                if server.deleted:
                    self._leak_volume(server, volume_id)
                return
            volume_api.unreserve(volume_id, ids)
            self._compute_log(server.host).write(
                "WARNING", "nova.compute.manager", f"Attaching volume {volume_id} aborted: the instance is "
                "being deleted", ctx, instance=server.id)
            self._event(record, "compute_attach_volume", server.host, "Error", None, "InstanceNotFound")
            return
        volume_api.attach(volume_id, server.id, attachment["device"], server.host or "", ids)
        server.volumes[volume_id] = attachment
        server.touch()
        self._guest_sync(server)
        self._event(record, "compute_attach_volume", server.host)
