"""The planted race bugs of the embedded cloud's Nova, and the Nova tracebacks its logs carry.

Each race is armed by a fault (faults.py: `roll` decides, `fired` records the finding with the
request ids involved) and leaves behind what the real bug leaves: the same log lines and
traceback, the same wrong state. The frames below are those of Nova 34 and oslo.messaging as
a real cloud logged them; the state engine (compute_engine.py) uses them for its ordinary
failures too (NoValidHost, the quota re-check, a conductor's RPC timeout).

`ComputeRaces` is a mixin of `Compute` (compute.py): its methods read and change the
servers the engine drives.
"""
from __future__ import annotations

import time
import uuid

from .compute_model import ACTIONS, Server
from .config import Delays
from .logs import LogContext, ServiceLog
from .service import ApiError, Call

NOVA_PY = "/opt/stack/venv/lib/python3.11/site-packages/nova"
MSG_PY = "/opt/stack/venv/lib/python3.11/site-packages/oslo_messaging"
RACE_WINDOW = 0.1  # seconds between two boots that makes their scheduling race
# seconds between two accepted state changes of one server that puts the second inside the
# first's check-then-save window (both read task_state None, the second's save then fails)
STATE_RACE_WINDOW = 0.05
# seconds (at delay scale 1) between runs of compute's update_available_resource periodic task,
# which heals allocations left behind by deleted instances (Nova's default interval)
HEAL_INTERVAL = 60.0


def _frames(*frames: tuple[str, int, str, str]) -> list[str]:
    lines = []
    for path, line, function, source in frames:
        lines.append(f'  File "{path}", line {line}, in {function}')
        lines.append(f"    {source}")
    return lines


SAVE_FRAMES = [
    ("/opt/stack/venv/lib/python3.11/site-packages/oslo_versionedobjects/base.py", 226, "wrapper",
     "return fn(self, *args, **kwargs)"),
    (f"{NOVA_PY}/objects/instance.py", 880, "save", "old_ref, inst_ref = db.instance_update_and_get_original("),
    (f"{NOVA_PY}/db/utils.py", 35, "wrapper", "return f(*args, **kwargs)"),
    (f"{NOVA_PY}/db/main/api.py", 2327, "instance_update_and_get_original",
     "return (copy.copy(instance_ref), _instance_update("),
    (f"{NOVA_PY}/db/main/api.py", 2466, "_instance_update", "raise exc(**exc_props)")]
SPAWN_FRAMES = _frames(
    (f"{NOVA_PY}/compute/manager.py", 2706, "_build_and_run_instance",
     "instance.save(expected_task_state=task_states.SPAWNING)"), *SAVE_FRAMES)
# an RPC call on its way through oslo.messaging
RPC_CALL = (
    (f"{MSG_PY}/rpc/client.py", 194, "call", "result = self.transport._send("),
    (f"{MSG_PY}/transport.py", 123, "_send", "return self._driver.send(target, ctxt, message,"),
    (f"{MSG_PY}/_drivers/amqpdriver.py", 824, "send",
     "return self._send(target, ctxt, message, wait_for_reply, timeout,"))
# an RPC call to a conductor that died under it, as nova-compute logged it on Nova 34
MESSAGING_TIMEOUT_FRAMES = _frames(
    (f"{NOVA_PY}/conductor/rpcapi.py", 247, "object_action",
     "return cctxt.call(context, 'object_action', objinst=objinst,"), *RPC_CALL,
    (f"{MSG_PY}/_drivers/amqpdriver.py", 813, "_send", "result = self._waiter.wait(msg_id, timeout,"),
    (f"{MSG_PY}/_drivers/amqpdriver.py", 684, "wait", "message = self.waiters.get(msg_id, timeout=timeout)"),
    (f"{MSG_PY}/_drivers/amqpdriver.py", 550, "get", "raise oslo_messaging.MessagingTimeout("))
REMOTE_SCHEDULE_FRAMES = [
    (f"{MSG_PY}/rpc/server.py", 274, "inner", "return func(*args, **kwargs)"),
    (f"{NOVA_PY}/scheduler/manager.py", 297, "select_destinations",
     "selections = self._select_destinations("),
    (f"{NOVA_PY}/scheduler/manager.py", 324, "_select_destinations", "selections = self._schedule("),
    (f"{NOVA_PY}/scheduler/manager.py", 525, "_schedule", "self._ensure_sufficient_hosts("),
    (f"{NOVA_PY}/scheduler/manager.py", 572, "_ensure_sufficient_hosts",
     "raise exception.NoValidHost(reason=reason)")]
CONDUCTOR_FRAMES = _frames(
    (f"{NOVA_PY}/conductor/manager.py", 1683, "schedule_and_build_instances",
     "host_lists = self._schedule_instances(context, request_specs[0],"),
    (f"{NOVA_PY}/conductor/manager.py", 971, "_schedule_instances",
     "host_lists = self.query_client.select_destinations("),
    (f"{NOVA_PY}/scheduler/client/query.py", 41, "select_destinations",
     "return self.scheduler_rpcapi.select_destinations(context, spec_obj,"),
    (f"{NOVA_PY}/scheduler/rpcapi.py", 160, "select_destinations",
     "return cctxt.call(ctxt, 'select_destinations', **msg_args)"), *RPC_CALL,
    (f"{MSG_PY}/_drivers/amqpdriver.py", 816, "_send", "raise result"))
ATTACH_FRAMES = _frames(
    (f"{NOVA_PY}/compute/manager.py", 7781, "_attach_volume",
     "bdm.attach(context, instance, self.volume_api, self.driver,"),
    (f"{NOVA_PY}/virt/block_device.py", 46, "wrapped", "ret_val = method(obj, context, *args, **kwargs)"),
    (f"{NOVA_PY}/virt/block_device.py", 672, "attach", "self._do_attach(context, instance, volume,"),
    (f"{NOVA_PY}/virt/block_device.py", 657, "_do_attach", "instance.refresh()"),
    (f"{NOVA_PY}/objects/instance.py", 1003, "refresh",
     "current = self.__class__.get_by_uuid(context, uuid=self.uuid,"),
    (f"{NOVA_PY}/db/main/api.py", 1364, "_instance_get_by_uuid",
     "raise exception.InstanceNotFound(instance_id=uuid)"))


# instance action -> (API controller module, compute API method)
API_ACTIONS = {"reboot": ("servers.py", "reboot"), "stop": ("servers.py", "stop"), "start": ("servers.py", "start"),
               "pause": ("pause_server.py", "pause"), "unpause": ("pause_server.py", "unpause"),
               "suspend": ("suspend_server.py", "suspend"), "resume": ("suspend_server.py", "resume"),
               "shelve": ("shelve.py", "shelve"), "unshelve": ("shelve.py", "unshelve"),
               "rebuild": ("servers.py", "rebuild"), "resize": ("servers.py", "resize"),
               "confirmResize": ("servers.py", "confirm_resize"), "revertResize": ("servers.py", "revert_resize"),
               "os-stop": ("servers.py", "stop"), "os-start": ("servers.py", "start"),
               "confirm_resize": ("servers.py", "confirm_resize"), "revert_resize": ("servers.py", "revert_resize"),
               "createImage": ("servers.py", "snapshot")}
# instance action -> compute manager method its RPC lands in
MANAGER_ACTIONS = {"reboot": "reboot_instance", "stop": "stop_instance", "start": "start_instance",
                   "pause": "pause_instance", "unpause": "unpause_instance", "suspend": "suspend_instance",
                   "resume": "resume_instance", "shelve": "shelve_instance", "rebuild": "rebuild_instance",
                   "resize": "resize_instance", "revertResize": "revert_resize", "confirmResize": "confirm_resize",
                   "createImage": "snapshot_instance"}
EXCUTILS_PY = "/opt/stack/venv/lib/python3.11/site-packages/oslo_utils/excutils.py"
# an exception escaping an RPC cast: oslo.messaging logs it under this traceback head
RPC_DISPATCH_FRAMES = [
    (f"{MSG_PY}/rpc/server.py", 176, "_process_incoming", "res = self.dispatcher.dispatch(message)"),
    (f"{MSG_PY}/rpc/dispatcher.py", 309, "dispatch", "return self._do_dispatch(endpoint, method, ctxt, args)"),
    (f"{MSG_PY}/rpc/dispatcher.py", 229, "_do_dispatch", "result = func(ctxt, **new_args)")]
# schedule_and_build_instances re-raising the conductor's quota re-check (TooManyInstances)
QUOTA_RECHECK_FRAMES = _frames(
    *RPC_DISPATCH_FRAMES,
    (f"{NOVA_PY}/conductor/manager.py", 1774, "schedule_and_build_instances",
     "with excutils.save_and_reraise_exception():"),
    (EXCUTILS_PY, 260, "__exit__", "self.force_reraise()"),
    (EXCUTILS_PY, 226, "force_reraise", "raise self.value"),
    (f"{NOVA_PY}/conductor/manager.py", 1768, "schedule_and_build_instances",
     "self._recheck_quota(context, instance.flavor, request_specs[0],"),
    (f"{NOVA_PY}/conductor/manager.py", 1025, "_recheck_quota", "compute_utils.check_num_instances_quota("),
    (f"{NOVA_PY}/compute/utils.py", 1181, "check_num_instances_quota",
     "raise exception.TooManyInstances(overs=overs,"))


def _remote_traceback(frames: list[tuple[str, int, str, str]], final: str) -> str:
    """oslo.messaging's remote traceback: frames separated by blank lines."""
    parts = ["Traceback (most recent call last):", ""]
    for path, line, function, source in frames:
        parts += [f'  File "{path}", line {line}, in {function}', f"    {source}", ""]
    parts.append(final)
    return "\n".join(parts)


class ComputeRaces:
    """The planted races: each checks whether its window is open, rolls its fault, and plays
    the bug out in the logs, the instance actions and the server's state."""

    # -- an API call inside another's check-then-save window --------------
    def _state_change_race(self, call: Call, server: Server, action: str) -> None:
        """The planted bug: a second state change inside the first's check-then-save window
        passed the API's check too; its instance.save(expected_task_state=[None]) fails -> 500."""
        change = server.last_change
        if change is None or server.task_state is None or server.task_state == "deleting":
            return
        if time.monotonic() - change[0] > STATE_RACE_WINDOW or server.vm_state == "building":
            return
        rule = ACTIONS.get(action)
        if rule is not None and server.vm_state not in rule.vm_states:
            return  # refused by the vm_state check before any save: a plain 409
        if not self.cloud.faults.roll("state-change-race"):
            return
        text = (f"Conflict updating instance {server.id}. Expected: {{'task_state': [None]}}. "
                f"Actual: {{'task_state': '{server.task_state}'}}")
        controller, method = API_ACTIONS.get(action, ("servers.py", action))
        traceback = ["Traceback (most recent call last):"] + _frames(
            (f"{NOVA_PY}/api/openstack/wsgi.py", 658, "wrapped", "return f(*args, **kwargs)"),
            (f"{NOVA_PY}/api/openstack/compute/{controller}", 1101, f"_action_{method}",
             f"self.compute_api.{method}(context, instance)"),
            (f"{NOVA_PY}/compute/api.py", 226, "inner", "return function(self, context, instance, *args, **kwargs)"),
            (f"{NOVA_PY}/compute/api.py", 3864, method, "instance.save(expected_task_state=[None])"),
            *SAVE_FRAMES) + [f"nova.exception.UnexpectedTaskStateError: {text}"]
        self.log(call, "ERROR", "nova.api.openstack.wsgi",
                 f"Unexpected exception in API method: nova.exception.UnexpectedTaskStateError: {text}",
                 traceback=traceback)
        self.cloud.faults.fired("state-change-race", list(change[2]) + call.ids, server.id,
                                f"{action} on {server.id} raced {change[4]} accepted "
                                f"{1000 * (time.monotonic() - change[0]):.0f} ms earlier: HTTP 500",
                                log=self.cloud.logs.api.path.name)
        raise ApiError(500, "Unexpected API Error. Please contact the administrator\n"
                            "<class 'nova.exception.UnexpectedTaskStateError'>", "internal")

    # -- a DELETE racing the build or an action in flight --------------------
    def _delete_during_build(self, server: Server) -> None:
        """The planted bug: spawn finishes over a DELETE's task_state; the delete is lost."""
        delete_ctx, delete_ids, record = server.lost_delete
        server.lost_delete = None
        log = self._compute_log(server.host)
        text = (f"Conflict updating instance {server.id}. Expected: {{'task_state': ['spawning']}}. "
                "Actual: {'task_state': 'deleting'}")
        log.write("INFO", "nova.compute.manager", "Terminating instance", delete_ctx, instance=server.id)
        traceback = ["Traceback (most recent call last):"] + SPAWN_FRAMES + [
            f"nova.exception.UnexpectedDeletingTaskStateError: {text}"]
        log.write("ERROR", "nova.compute.manager",
                  f"Instance failed to spawn: nova.exception.UnexpectedDeletingTaskStateError: {text}",
                  server.context, instance=server.id, traceback=traceback)
        log.write("ERROR", "nova.compute.manager",
                  f"Setting instance vm_state to ERROR: nova.exception.UnexpectedDeletingTaskStateError: {text}",
                  delete_ctx, instance=server.id)
        details = "\n".join(traceback) + "\n"
        self._set_error(server, "UnexpectedDeletingTaskStateError", details)
        server.power_state = 0
        server.allocations_leak = True
        self._event(record, "compute_terminate_instance", server.host, "Error", details,
                    "UnexpectedDeletingTaskStateError")
        if server.actions:
            self._event(server.actions[0], "compute__do_build_and_run_instance", server.host, "Error",
                        details, "UnexpectedDeletingTaskStateError")
        self.cloud.faults.fired("delete-during-build", server.boot_ids + delete_ids, server.id,
                                f"DELETE {delete_ids[-1]} landed while {server.id} was building; "
                                "the server went to ERROR instead of being deleted",
                                log=f"nova-compute-{server.host}.log")

    def _delete_races_action(self, server: Server, delete_ids: list[str]) -> None:
        """A DELETE accepted while an action is in flight: maybe plant one of two races."""
        change = server.last_change
        if change is None or server.task_state in (None, "deleting") or server.vm_state == "building":
            return
        if change[4] in ("createImage", "createBackup"):
            return  # snapshot_instance and backup_instance expect the delete: the partial image goes, no crash
        if change[4] == "unshelve" and server.vm_state in ("shelved", "shelved_offloaded"):
            if self.cloud.faults.roll("unshelve-delete-allocations"):
                server.unshelve_race = (change, list(delete_ids))
        elif server.host and self.cloud.faults.roll("delete-preempts-action"):
            server.preempted = (change, list(delete_ids))

    def _action_preempted(self, server: Server) -> None:
        """The planted bug: the action's compute thread saves over the DELETE and crashes."""
        (_, ctx, ids, task, action, record), delete_ids = server.preempted
        server.preempted = None
        host = server.host or self.cloud.compute_hosts[0]
        function = MANAGER_ACTIONS.get(action, f"{action}_instance")
        text = (f"Conflict updating instance {server.id}. Expected: {{'task_state': ['{task}']}}. "
                "Actual: {'task_state': 'deleting'}")
        traceback = ["Traceback (most recent call last):"] + _frames(
            (f"{MSG_PY}/rpc/server.py", 174, "_process_incoming", "res = self.dispatcher.dispatch(message)"),
            (f"{MSG_PY}/rpc/dispatcher.py", 309, "dispatch", "return self._do_dispatch(endpoint, method, ctxt, args)"),
            (f"{MSG_PY}/rpc/dispatcher.py", 229, "_do_dispatch", "result = func(ctxt, **new_args)"),
            (f"{NOVA_PY}/exception_wrapper.py", 65, "wrapped", "with excutils.save_and_reraise_exception():"),
            (f"{NOVA_PY}/compute/utils.py", 1483, "decorated_function", "return function(self, context, *args, **kwargs)"),
            (f"{NOVA_PY}/compute/manager.py", 215, "decorated_function",
             "return function(self, context, *args, **kwargs)"),
            (f"{NOVA_PY}/compute/manager.py", 4088, function,
             f"instance.save(expected_task_state=task_states.{task.upper().replace('-', '_')})"),
            *SAVE_FRAMES) + [f"nova.exception.UnexpectedDeletingTaskStateError: {text}"]
        log = self._compute_log(host)
        log.write("ERROR", "oslo_messaging.rpc.server", "Exception during message handling: "
                  f"nova.exception.UnexpectedDeletingTaskStateError: {text}", ctx, traceback=traceback)
        self._event(record, f"compute_{function}", host, "Error", "\n".join(traceback) + "\n",
                    "UnexpectedDeletingTaskStateError")
        self.cloud.faults.fired("delete-preempts-action", list(ids) + delete_ids, server.id,
                                f"DELETE {delete_ids[-1]} landed while {action} was in flight on {host}",
                                log=log.path.name)

    def _unshelve_recreates_allocations(self, server: Server) -> None:
        """The planted bug: the unshelve's claim lands after the delete freed the allocations."""
        (_, ctx, ids, _task, _action, record), delete_ids = server.unshelve_race
        server.unshelve_race = None
        claim = getattr(self.cloud.placement, "claim", None)
        host = server.host or next(iter(self._candidate_hosts(server)), self.cloud.compute_hosts[0])
        if claim is None or not claim(server.id, host, server.flavor.resources, server.project_id,
                                      server.user_id):
            return
        log = self._compute_log(host)
        text = f"Instance {server.id} could not be found."
        traceback = ["Traceback (most recent call last):"] + _frames(
            (f"{NOVA_PY}/compute/manager.py", 6851, "_unshelve_instance",
             "self._power_on(context, instance)"),
            (f"{NOVA_PY}/compute/manager.py", 3193, "_power_on", "self.driver.power_on(context, instance,"),
            (f"{NOVA_PY}/objects/instance.py", 1003, "refresh",
             "current = self.__class__.get_by_uuid(context, uuid=self.uuid,"),
            (f"{NOVA_PY}/db/main/api.py", 1364, "_instance_get_by_uuid",
             "raise exception.InstanceNotFound(instance_id=uuid)")) + [f"nova.exception.InstanceNotFound: {text}"]
        log.write("ERROR", "nova.compute.manager", f"Instance failed to spawn: nova.exception.InstanceNotFound: "
                  f"{text}", ctx, instance=server.id, traceback=traceback)
        self._event(record, "compute_unshelve_instance", host, "Error", "\n".join(traceback) + "\n",
                    "InstanceNotFound")
        self.cloud.faults.fired("unshelve-delete-allocations", list(ids) + delete_ids, server.id,
                                f"unshelve of {server.id} raced DELETE {delete_ids[-1]}: its allocations on "
                                f"{host} were re-created after the delete", log=log.path.name)
        # the periodic task runs on the cloud's clock: scaled like its build delay
        scale = self.cloud.config.delays.build[1] / Delays().build[1]
        self.cloud.later(max(HEAL_INTERVAL * scale, 0.5), self._heal_allocations, server.id, host)

    def _heal_allocations(self, server_id: str, host: str) -> None:
        """update_available_resource: allocations of an instance that is gone are removed."""
        placement = self.cloud.placement
        held = getattr(placement, "allocations_of", lambda _id: {})(server_id)
        if not held or server_id in self.servers:
            return
        placement.free(server_id)
        remained = {rp: {"resources": alloc["resources"]} for rp, alloc in held.items()}
        self._compute_log(host).write(
            "WARNING", "nova.compute.resource_tracker",
            f"Instance {server_id} has been deleted (perhaps locally). Deleting allocations that remained "
            f"for this instance against this compute host: {remained}.", LogContext(f"req-{uuid.uuid4()}"))

    def _migration_deleted(self, server: Server, ids: list[str]) -> None:
        """The server is deleted while it has a migration. The planted bug: a delete landing
        while the resize is in flight leaves the migration's source allocation for good; the
        source's periodic task only reports it (it heals an instance's, not a migration's)."""
        migration = server.migration
        if migration is None:
            return
        if server.task_state is None or not self.cloud.faults.roll("resize-delete-migration-leak"):
            self._end_migration(server)
            return
        source = migration.source_compute
        self.cloud.faults.fired("resize-delete-migration-leak", migration.request_ids + list(ids), server.id,
                                f"DELETE {ids[-1] if ids else ''} of {server.id} raced its resize: migration "
                                f"{migration.uuid} keeps its allocation on {source}", log=f"nova-compute-{source}.log")
        scale = self.cloud.config.delays.build[1] / Delays().build[1]
        self.cloud.later(max(HEAL_INTERVAL * scale, 0.5), self._compute_log(source).write, "INFO",
                         "nova.compute.resource_tracker",
                         f"Instance {migration.uuid} has allocations against this compute host but is not found "
                         "in the database.", LogContext(f"req-{uuid.uuid4()}"))

    def _leak_volume(self, server: Server, volume_id: str) -> None:
        """The planted bug: the volume stays attached to a server that is gone."""
        server.leaked_volumes.discard(volume_id)
        attachment = server.volumes[volume_id]
        attach_ctx, attach_ids = attachment["_context"], attachment["_ids"]
        delete_ctx, delete_ids = server.leak_context or (None, [])
        text = f"Instance {server.id} could not be found."
        traceback = ["Traceback (most recent call last):"] + ATTACH_FRAMES + [
            f"nova.exception.InstanceNotFound: {text}"]
        log = self._compute_log(server.host)
        log.write("ERROR", "nova.compute.manager",
                  f"Failed to attach {volume_id} at {server.volumes[volume_id]['device']}: "
                  f"nova.exception.InstanceNotFound: {text}", attach_ctx, instance=server.id, traceback=traceback)
        log.write("ERROR", "nova.compute.manager",
                  f"Volume {volume_id} is still attached after the instance was deleted; it was not detached",
                  delete_ctx, instance=server.id)
        self.cloud.faults.fired("attach-during-delete", attach_ids + list(delete_ids), server.id,
                                f"volume {volume_id} left in-use, attached to deleted server {server.id}",
                                log=f"nova-compute-{server.host or self.cloud.compute_hosts[0]}.log")

    # -- boots racing each other ---------------------------------------------
    def _group_burst_host(self, server: Server) -> str | None:
        """The planted bug: boots of one burst into an anti-affinity group each saw the group
        before the others' claims; this one takes a peer's host, the policy is violated. A peer
        raced it when they were accepted nearly together, or when this boot was accepted before
        the peer's host was recorded (its scheduling was still under way)."""
        for group_id in server.server_groups:
            group = self.server_groups.get(group_id)
            if group is None or group.policy != "anti-affinity":
                continue
            peers = [peer for peer in (self.servers.get(m) for m in group.members if m != server.id)
                     if peer is not None and peer.host and _overlapped(peer, server)]
            if not peers or not self.cloud.faults.roll("group-policy-burst"):
                continue
            peer = peers[0]
            if not self._claim(server, peer.host, server.flavor):
                continue
            self.cloud.faults.fired("group-policy-burst", peer.boot_ids + server.boot_ids, server.id,
                                    f"anti-affinity group {group.id}: {server.id} placed on {peer.host} "
                                    f"with {peer.id}", log=self.cloud.logs.scheduler.path.name)
            return peer.host
        return None

    def _quota_recheck_skipped(self, server: Server, message: str) -> bool:
        """The planted bug: the re-check is skipped and a boot over the quota is built."""
        if not self.cloud.faults.roll("quota-recheck-skipped"):
            return False
        self.cloud.faults.fired("quota-recheck-skipped", server.boot_ids, server.id,
                                f"boot of {server.id} was built over project {server.project_id}'s quota, "
                                f"the conductor's re-check skipped ({message})")
        return True

    def _quota_commit_failed(self, server: Server, log: ServiceLog, ctx: LogContext, ids: list[str],
                             boot_ids: list[str]) -> None:
        """The planted bug: the delete's usage decrement is lost; in_use stays one too high."""
        reservation = str(uuid.uuid4())
        deadlock = ("oslo_db.exception.DBDeadlock: (pymysql.err.OperationalError) (1213, 'Deadlock found "
                    "when trying to get lock; try restarting transaction')")
        traceback = ["Traceback (most recent call last):"] + _frames(
            (f"{NOVA_PY}/quota.py", 1167, "commit", "self._driver.commit(context, reservations,"),
            (f"{NOVA_PY}/quota.py", 637, "commit", "db.reservation_commit(context, reservations,"),
            (f"{NOVA_PY}/db/main/api.py", 3480, "reservation_commit",
             "_quota_usage_get_all_by_project_and_user(context, project_id, user_id)"),
            ("/opt/stack/venv/lib/python3.11/site-packages/oslo_db/sqlalchemy/exc_filters.py", 88,
             "_deadlock_error", "raise exception.DBDeadlock(operational_error)")) + [deadlock]
        log.write("ERROR", "nova.quota", f"Failed to commit reservations ['{reservation}']", ctx,
                  traceback=traceback)
        name = log.path.name
        self.cloud.faults.fired("quota-usage-drift", ids + boot_ids, server.id,
                                f"delete of {server.id} raced a boot in project {server.project_id}; "
                                "instance usage left one too high", log=name)


def _overlapped(peer: Server, server: Server) -> bool:
    """Whether two boots' scheduling overlapped: accepted within RACE_WINDOW of each other, or
    `server` accepted while `peer` was still being scheduled."""
    placed = peer.handed_to_compute if peer.handed_to_compute is not None else peer.scheduled_at
    return abs(peer.scheduled_at - server.scheduled_at) <= RACE_WINDOW or server.scheduled_at <= placed
