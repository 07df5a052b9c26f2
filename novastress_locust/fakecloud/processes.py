"""The embedded cloud's services as processes that can be stopped, killed, frozen and started,
with the consequences a real cloud shows (what `--fault` drives through `/fakecloud/services`):

    POST /fakecloud/services {"service": "nova-compute", "host": "compute-1", "action": "kill"}
    GET  /fakecloud/services                 # each service, its host, state and last heartbeat

* An API (nova-api, placement, glance, neutron, keystone) stopped answers 503, as a load
  balancer with no backend does; frozen, its requests wait until it is thawed.
* nova-compute on a host: while it is down or frozen, the work of its servers waits (the
  messages for it stay queued). Started again after a stop or kill, it does what Nova's
  init_host does: a server it was building goes to ERROR (with no instance fault), a rebuild too, a snapshot's or a
  resize's task state is cleared, a reboot or pause in flight is cleared (vm_state active), a
  delete is finished; the rest of its queued work goes on.
* nova-conductor, rabbitmq, the database: while down or frozen every server's work waits. A
  conductor stopped or killed loses the builds it was scheduling: they stay in BUILD until
  deleted; and the replies to the computes' calls: a delete in flight on a host times out
  (rpc_response_timeout, shortened), its task state is reverted and the server is back in its
  vm_state, the DELETEs sent meanwhile ignored, as Nova 34 does. nova-scheduler and placement: the builds being scheduled wait.
* The database stopped: every API answers 500, as Nova does without its database; frozen, every
  API request waits until it is thawed.
* A Nova service's heartbeat (os-services `updated_at`) stops while it is down or frozen; it
  is `down` once SERVICE_DOWN_TIME has passed, as in Nova.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import gevent
import gevent.event

from .service import ApiError

SERVICES = ("nova-api", "nova-conductor", "nova-scheduler", "nova-compute", "placement", "neutron",
            "glance", "keystone", "rabbitmq", "database")
VERBS = ("start", "stop", "restart", "kill", "freeze", "thaw")
API_PREFIXES = {"compute": "nova-api", "placement": "placement", "image": "glance", "networking": "neutron",
                "identity": "keystone"}
SERVICE_DOWN_TIME = 60.0          # nova.conf [DEFAULT] service_down_time
RESTART_GAP_MIN = 0.05            # seconds a restarted service is away, at least (else an action's delay)
HOLDS_EVERY_SERVER = ("nova-conductor", "rabbitmq", "database")
HOLDS_SCHEDULING = ("nova-scheduler", "placement")
INIT_HOST_ERROR = ("rebuilding", "rebuild_block_device_mapping", "rebuild_spawning")
INIT_HOST_CLEARED = ("image_snapshot", "image_snapshot_pending", "image_pending_upload", "image_uploading",
                     "resize_prep")
INIT_HOST_RUNNING = ("reboot_started", "reboot_started_hard", "rebooting_hard", "rebooting", "pausing",
                     "unpausing")


@dataclass
class Process:
    service: str
    host: str
    state: str = "running"                 # running, stopped, frozen
    heartbeat: float = 0.0                 # when it last reported (while running: now)
    died: bool = False                     # stopped or killed since it last started: init_host runs

    def last_heartbeat(self) -> float:
        return time.time() if self.state == "running" else self.heartbeat


class Processes:
    """Which services run, and what their being down does to the cloud."""

    def __init__(self, cloud) -> None:
        self.cloud = cloud
        self.table: dict[tuple[str, str], Process] = {}
        self.thawed = gevent.event.Event()
        self.thawed.set()
        self.changed_at = 0.0

    # -- the table -------------------------------------------------------------------------
    def _hosts(self, service: str) -> list[str]:
        return list(self.cloud.compute_hosts) if service == "nova-compute" else ["controller"]

    def get(self, service: str, host: str = "") -> Process:
        if service not in SERVICES:
            raise ApiError(400, f"no service {service!r}; services: {', '.join(SERVICES)}")
        hosts = self._hosts(service)
        host = host or hosts[0]
        if host not in hosts:
            raise ApiError(404, f"{service} does not run on {host!r}; it runs on {', '.join(hosts)}")
        key = (service, host)
        if key not in self.table:
            self.table[key] = Process(service, host, heartbeat=time.time())
        return self.table[key]

    def listing(self) -> list[dict]:
        rows = []
        for service in SERVICES:
            for host in self._hosts(service):
                process = self.get(service, host)
                rows.append({"service": service, "host": host, "state": process.state,
                             "heartbeat": process.last_heartbeat()})
        return rows

    # -- acting on one ------------------------------------------------------------------------
    def act(self, verb: str, service: str, host: str = "") -> Process:
        if verb not in VERBS:
            raise ApiError(400, f"no action {verb!r}; actions: {', '.join(VERBS)}")
        process = self.get(service, host)
        log = self._log(process)
        if verb in ("stop", "kill", "restart"):
            if process.state != "stopped":
                process.heartbeat = process.last_heartbeat()
                process.state, process.died = "stopped", True
                log.write("INFO" if verb != "kill" else "WARNING", "oslo_service.service",
                          "Caught SIGTERM, stopping children" if verb != "kill" else
                          "Service process killed (SIGKILL)")
                self._lost_with(process)
            if verb == "restart":
                gevent.sleep(max(RESTART_GAP_MIN, self.cloud.delay("action")))
        if verb == "freeze" and process.state == "running":
            process.heartbeat, process.state = time.time(), "frozen"
        if verb == "thaw" and process.state == "frozen":
            process.state = "running"
        if verb in ("start", "restart") and process.state == "stopped":
            process.state = "running"
            log.write("INFO", f"nova.{process.service.removeprefix('nova-')}" if process.service.startswith("nova-")
                      else process.service, f"Starting {process.service} node (version 34.0.0)")
            if process.died and process.service == "nova-compute":
                self._init_host(process.host)
            process.died = False
        self.changed_at = time.time()
        if all(p.state != "frozen" for p in self.table.values()
               if p.service in API_PREFIXES.values() or p.service == "database"):
            self.thawed.set()
        else:
            self.thawed.clear()
        return process

    def _log(self, process: Process):
        logs = self.cloud.logs
        if process.service == "nova-compute":
            return logs.compute(process.host)
        name = {"nova-conductor": "nova-conductor", "nova-scheduler": "nova-scheduler"}.get(process.service, "nova-api")
        return logs[name]

    def _lost_with(self, process: Process) -> None:
        """A conductor that dies loses the builds it was scheduling (they stay in BUILD) and the
        replies the computes wait for: a delete in flight is reverted (compute.drop_delete)."""
        if process.service != "nova-conductor":
            return
        compute = self.cloud.compute
        for server in list(compute.servers.values()):
            if server.deleted:
                continue
            if server.vm_state == "building" and server.host is None:
                server.epoch += 1
            elif server.task_state == "deleting" and server.host and server.lost_delete is None \
                    and server.delete_dropped is None:
                compute.drop_delete(server, server.delete_context, [])

    def _init_host(self, host: str) -> None:
        """What nova-compute's init_host does with the servers of its host after a restart."""
        compute = self.cloud.compute
        log = self.cloud.logs.compute(host)
        for server in list(compute.servers.values()):
            if server.host != host or server.deleted:
                continue
            task = server.task_state
            if task == "deleting":
                log.write("INFO", "nova.compute.manager", "Service started deleting the instance during the "
                          "previous run, but did not finish. Restarting the deletion now.", server.context,
                          instance=server.id)
                continue                     # its queued delete goes on
            if server.vm_state == "building" or task in INIT_HOST_ERROR:
                server.epoch += 1
                log.write("DEBUG", "nova.compute.manager", "Instance failed to spawn correctly, setting to "
                          "ERROR state", server.context, instance=server.id)
                # as Nova's _set_instance_obj_error_state: ERROR, task state cleared, no instance fault
                server.vm_state, server.task_state = "error", None
                server.touch()
            elif task in INIT_HOST_CLEARED:
                server.epoch += 1
                log.write("DEBUG", "nova.compute.manager", f"Instance in transitional state {task} at start-up "
                          "clearing task state", server.context, instance=server.id)
                server.task_state = None
                server.touch()
            elif task in INIT_HOST_RUNNING:
                server.epoch += 1
                log.write("WARNING", "nova.compute.manager", f"Instance in transitional state ({task}) at start-up "
                          "and power state is (1), clearing task state", server.context, instance=server.id)
                server.task_state, server.vm_state, server.power_state = None, "active", 1
                server.touch()

    # -- what being down does -------------------------------------------------------------
    def down(self, service: str, host: str = "") -> bool:
        key = (service, host or self._hosts(service)[0])
        process = self.table.get(key)
        return process is not None and process.state != "running"

    def holds(self, server) -> bool:
        """Whether the server's next step waits for a service that is down or frozen."""
        if not self.table:
            return False
        if any(self.down(service) for service in HOLDS_EVERY_SERVER):
            return True
        if server.host is None:
            return any(self.down(service) for service in HOLDS_SCHEDULING)
        return self.down("nova-compute", server.host)

    def gate(self, prefix: str) -> None:
        """Before an API request: ApiError when its service cannot answer; waits while it is frozen."""
        if not self.table:
            return
        service = API_PREFIXES.get(prefix)
        if service is None:
            return
        # a frozen API, or the database under it frozen: the request waits (the connection is open)
        for process in (self.table.get((service, "controller")), self.table.get(("database", "controller"))):
            while process is not None and process.state == "frozen":
                self.thawed.wait(1.0)
        process = self.table.get((service, "controller"))
        if process is not None and process.state == "stopped":
            raise ApiError(503, f"{service} is not running (no server is available to handle this request)",
                           "unavailable")
        if self.down("database"):
            raise ApiError(500, "(pymysql.err.OperationalError) (2003, \"Can't connect to MySQL server\")",
                           "database")

    def heartbeat(self, binary: str, host: str) -> tuple[float, bool]:
        """(last heartbeat, up) of a Nova service for os-services."""
        process = self.table.get((binary, host))
        if process is None:
            return time.time(), True
        last = process.last_heartbeat()
        return last, time.time() - last <= SERVICE_DOWN_TIME
