"""NovaUser: a Locust user that drives OpenStack through a keystoneauth Session.

    class ServerCreateDestroy(NovaUser):
        threads = 8
        tasks = [server_create_destroy]

Every HTTP call fires a Locust request event named by its template
(`compute GET /servers/{id}`); every action is timed as a whole (`ACTION`) with Rally-style
atomic steps (`ATOMIC boot_server`), sends one global `X-OpenStack-Request-ID` on all its
calls and records every request id it saw. Every resource is named
`<prefix>-<run id>-...` and tracked by its user until it is deleted and gone: on a failed
action, at test stop, Ctrl-C, StopUser and quit.
"""
from __future__ import annotations

import logging
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import gevent
from gevent import GreenletExit
from locust import User, constant
from locust.exception import StopUser
from locust.runners import STATE_CLEANUP, STATE_STOPPED, STATE_STOPPING

from . import phases
from . import plugin as _plugin  # noqa: F401  (a locustfile importing NovaUser gets novastress's listeners)
from .client import (ApiError, OpenStackClient, ServiceClient, generalize, microversion_at_least, request_id_of,
                     shared_waiter, template)
from .errors import error_message, first_line
from .kinds import KINDS, reset_volume, volume_held_for
from .options import BACKOFF_AFTER
from .requestlog import ActionRecord, timed
from .state import Leak, request_index, run_state
from .waiter import ACTIVE, DELETED, WaitError

LOG = logging.getLogger("novastress")
# a user whose setup failed tries again after 1 s, 2 s, 4 s... at most 30 s apart
SETUP_RETRY_INITIAL, SETUP_RETRY_MAX = 1.0, 30.0
VOLUME_BUSY = ("creating", "in-use", "attaching", "detaching", "reserved", "downloading")
IMAGE_BUSY = ("queued", "saving", "uploading", "importing")   # a snapshot still being written


@dataclass
class Tracked:
    """A resource a user created and has not seen disappear yet."""

    kind: str
    name: str
    resource_id: str | None = None
    # the client that made it, when not the user's own (a snapshot the storm's peer asked for):
    # Glance lets only its owner, or an admin, delete it
    owner: "OpenStackClient | None" = None


class NovaUser(User):
    """Base of every novastress user: one OpenStack client, tracked resources, timed actions."""

    abstract = True
    # Tempest's workers looped run() back to back
    wait_time = constant(0)
    # Tempest's "threads": how many of these users when -u is not given
    threads = 4
    # "batched" or "per-server"; None: the --waiter option
    waiter_kind: str | None = None
    _step: Any = None             # the innermost atomic step running (a wait that ends it says when)
    # checks of the options the class reads (ValueError names the bad one): the preflight and the
    # web UI's start form run them for the run's classes, before anything else
    option_checks: tuple[Callable[[Any], None], ...] = ()

    # -- hooks the plugin calls once per run for the run's classes (state.class_hooks) ----------
    @classmethod
    def run_init(cls, environment, runner) -> None:
        """After the plugin's preflight (on a worker: at its init): the class's own set-up of the
        run, e.g. a scenario leaving out entries the cloud cannot run."""

    @classmethod
    def run_test_stop(cls, environment) -> None:
        """At each test's end, before the run-scoped sweep: what the class made for the run."""

    def __init__(self, environment) -> None:
        super().__init__(environment)
        self.state = run_state(environment)
        self.name = self.state.next_user_name(type(self).__name__)
        self.number = self.state.user_numbers[type(self).__name__]
        self.client: OpenStackClient | None = None
        self.tracked: dict[str, Tracked] = {}
        # what the actions keep from run to run, by action-chosen key (kept resources, a server's
        # flavor after a resize, unit-test classes): declared here, not stashed on the instance
        self.kept: dict[str, Any] = {}
        self.runs = 0
        self._sequence = 0
        self._failure_streaks: dict[str, tuple[str, int]] = {}   # action -> (failure, times in a row)
        self._stop_deadline: float | None = None    # set by bounded() once the run stops

    # -- life cycle -----------------------------------------------------------
    def on_start(self) -> None:
        """Set the user up (`setup()`). A failure is a `setup` ACTION row with its reason, counted
        in the summary and the exit code, and is retried with capped back-off until the run ends."""
        delay = SETUP_RETRY_INITIAL
        while True:
            try:
                with timed(self.environment.events, "ACTION", "setup", describe=self._generalized,
                           counts=lambda error: error is not None and not self.being_stopped()):
                    self.setup()
                return
            except (GreenletExit, StopUser):
                raise
            except Exception as exc:
                if self.being_stopped():
                    raise GreenletExit() from exc
                self.state.count(self.name, "setup", failed=True)
                LOG.warning("%s setup failed: %s; trying again in %g s", self.name, first_line(exc), delay)
                if self.options.stop_on_error:
                    self.state.stop_run(f"{self.name} setup failed (--stop-on-error)")
                self.state.backed_off("setup")
                gevent.sleep(delay)
                # --backoff-cap bounds every back-off; 0 (no back-off for actions) still waits for setup
                delay = min(delay * 2, getattr(self.options, "backoff_cap", 0) or SETUP_RETRY_MAX)

    def setup(self) -> None:
        """The user's clients (and, in subclasses, what it needs before its first action)."""
        target = self.state.ensure_target()
        self.client = OpenStackClient(self.state, target, self.name)
        self.waiter = shared_waiter(self.state, self.client, self.waiter_kind)

    def on_stop(self) -> None:
        # StopUser, quit, a killed greenlet: whatever is still tracked goes now
        if self.client is not None:
            self.cleanup()

    @property
    def options(self):
        return self.state.options

    @property
    def compute(self) -> ServiceClient:
        return self.client.compute

    # -- naming and tracking ------------------------------------------------
    def resource_name(self, kind: str) -> str:
        """`<prefix>-<run id>-<process><user>-<n>-<kind>`: unique, and found by a prefix sweep."""
        self._sequence += 1
        return (f"{self.state.prefix}-{self.state.run_id}-{self.state.process_tag}{self.number}-"
                f"{self._sequence}-{kind}")

    def track(self, kind: str, name: str, resource_id: str | None = None,
              owner: "OpenStackClient | None" = None) -> Tracked:
        tracked = self.tracked.setdefault(name, Tracked(kind, name))
        tracked.owner = owner or tracked.owner
        if resource_id:
            tracked.resource_id = resource_id
            if self.client.action is not None:
                self.client.action.resource_ids.append(resource_id)
                self.client.index.note(self.client.action, resource_id)
        return tracked

    def untrack(self, name: str) -> None:
        self.tracked.pop(name, None)

    # -- actions and atomic steps ---------------------------------------------
    @contextmanager
    def action(self, name: str) -> Iterator[ActionRecord]:
        """Time a whole action; on failure or interruption delete what it left, then count it."""
        record = ActionRecord(name, self.name, self.state.worker, f"req-{uuid.uuid4()}")
        request_index(self.environment).add(record)
        self.client.action = record
        started = time.perf_counter()
        error: Exception | None = None
        try:
            yield record
        except (GreenletExit, StopUser):
            # stopped mid-action: not a success, not a failure of the cloud; leave nothing behind
            record.ended = time.time()
            self.state.interrupted += 1
            self.cleanup()
            raise
        except Exception as exc:  # the action failed: say what happened, delete what it made
            if self.being_stopped():
                # the stop's GreenletExit was lost in the action's own finally blocks (an error
                # raised there replaces it): end the user anyway, or the run never stops
                record.ended = time.time()
                self.state.interrupted += 1
                self.cleanup()
                raise GreenletExit() from exc
            error = exc
            record.failed, record.error = True, first_line(exc)
            if not self.options.leave_dirty_stack:
                self.cleanup()
        finally:
            self.client.action = None
            self.state.unreported.append(record)
        record.ended = time.time()
        self.environment.events.request.fire(
            request_type="ACTION", name=name, response_time=(time.perf_counter() - started) * 1000,
            response_length=0, exception=error and generalize(str(error), self.state.names),
            context={"global_request_id": record.global_request_id})
        self.state.count(self.name, name, failed=error is not None)
        self.runs += 1
        if error is not None:
            LOG.warning("%s %s failed [%s]: %s", self.name, name, record.global_request_id, record.error)
            if self.options.stop_on_error:
                self.state.stop_run(f"{self.name} {name} failed (--stop-on-error)")
        self._back_off(name, error)
        if self.options.max_runs and self.runs >= self.options.max_runs:
            self.state.user_done()
            while True:  # done: idle until the run ends (every user done, -t, Ctrl-C)
                gevent.sleep(3600)

    def bounded(self, timeout: float) -> float:
        """A wait's timeout. Once the run is stopping every wait of this user ends by one deadline,
        --cleanup-timeout after the stop reached it, so that a stop ends in bounded time."""
        if not self.being_stopped():
            return timeout
        if self._stop_deadline is None:
            self._stop_deadline = time.monotonic() + self.options.cleanup_timeout
        return max(0.0, min(timeout, self._stop_deadline - time.monotonic()))

    def _back_off(self, name: str, error: Exception | None) -> None:
        """The same failure BACKOFF_AFTER times in a row: wait 1 s before the next run, twice as
        long after each further one, at most --backoff-cap; a success or another failure resets it.
        A cloud that refuses an action outright is not hammered thousands of times a second."""
        if error is None:
            self._failure_streaks.pop(name, None)
            return
        failure = str(generalize(str(error), self.state.names))
        last, times = self._failure_streaks.get(name, ("", 0))
        times = times + 1 if failure == last else 1
        self._failure_streaks[name] = (failure, times)
        cap = getattr(self.options, "backoff_cap", 0) or 0
        if times >= BACKOFF_AFTER and cap > 0:
            self.state.backed_off(name)
            gevent.sleep(min(cap, 2.0 ** min(times - BACKOFF_AFTER, 30)))

    def being_stopped(self) -> bool:
        """Whether the run is stopping or Locust has asked this user's greenlet to die."""
        runner = self.environment.runner
        if runner is not None and getattr(runner, "state", None) in (STATE_STOPPING, STATE_STOPPED, STATE_CLEANUP):
            return True
        greenlet, group = getattr(self, "_greenlet", None), getattr(self, "_group", None)
        return greenlet is not None and greenlet in getattr(group, "dying", ())

    def atomic(self, name: str) -> "Atomic":
        """A Rally-style atomic step inside an action (`boot_server`, `delete_server`); a step cut
        short by the stop is interrupted, not failed: not reported."""
        return Atomic(self, name)

    def _reported(self, error: Exception | None) -> bool:
        return error is None or not self.being_stopped()

    def wait_server(self, server_id: str, name: str, status: str, timeout: float, **known: Any) -> dict | None:
        """The shared waiter's wait; the atomic step it ends ends when the server changed."""
        return self.waiter.wait(server_id, name, status, timeout, step=self._step, **known)

    def _generalized(self, error: Exception) -> str:
        """The error as its statistics row names it: ids and this run's names made generic."""
        return generalize(first_line(error), self.state.names)

    # -- servers ---------------------------------------------------------------
    def boot_server(self, **extra: Any) -> dict:
        """Create a server and wait until ACTIVE (Rally's nova.boot_server)."""
        boot = self.state.boot_args()
        name = self.resource_name("server")
        with self.atomic("boot_server"):
            self.track("server", name)
            body: dict[str, Any] = {"name": name, "imageRef": boot.image_id, "flavorRef": boot.flavor_id, **extra}
            if boot.networks != "none" or microversion_at_least(self.options.compute_microversion, 2, 37):
                body["networks"] = boot.networks
            before = time.time()
            response = self.compute.post("/servers", json={"server": body}, expect=(202,))
            server, request_id = response.json()["server"], request_id_of(response)
            del response          # a waiting user keeps no HTTP response (thousands of them wait)
            self.track("server", name, server["id"])
            active = self.wait_server(server["id"], name, ACTIVE, self.options.build_timeout,
                                      initial={"id": server["id"], "status": "BUILD"}, since=before)
        self.nova_phases(server["id"], request_id)
        return active or server

    def delete_server(self, server: dict) -> None:
        """Delete a server and wait until it is gone (Rally's nova.delete_server)."""
        with self.atomic("delete_server"):
            self._delete_and_wait(server["id"], server.get("name") or server["id"], server)

    def _delete_and_wait(self, server_id: str, name: str, known: dict | None = None) -> None:
        before = time.time()
        response = self.compute.delete(f"/servers/{server_id}", expect=(204, 404, 409))
        if response.status_code == 409:
            if "is locked" not in error_message(response):
                raise ApiError(f"compute DELETE /servers/{{id}} -> 409 {error_message(response)}", 409)
            # a lock action left it locked (a racing unlock lost): only an admin may delete a
            # locked server, its owner unlocks it first
            self.unlock_server(server_id)
            self.compute.delete(f"/servers/{server_id}", expect=(204, 404))
        self.wait_server(server_id, name, DELETED, self.bounded(self.options.delete_timeout), since=before,
                         initial={"status": known["status"]} if known and "status" in known else None)
        self.untrack(name)

    def unlock_server(self, server_id: str) -> None:
        """Unlock a server before deleting it (403: another credential locked it; a subclass that
        holds that credential unlocks with it)."""
        self.compute.post(f"/servers/{server_id}/action", json={"unlock": None}, expect=(202, 403, 404, 409),
                          name="compute POST /servers/{id}/action unlock")

    # -- floating IPs ------------------------------------------------------------
    def create_floating_ip(self, floating_network_id: str, **extra: Any) -> dict:
        """Allocate a floating IP. Neutron gives floating IPs no name: the resource name goes
        into `description`, where `novastress-cleanup` finds leftovers."""
        name = self.resource_name("floating-ip")
        self.track("floating_ip", name)
        body = {"floating_network_id": floating_network_id, "description": name, **extra}
        fip = self.client.network.post("/v2.0/floatingips", json={"floatingip": body},
                                       expect=(201,)).json()["floatingip"]
        self.track("floating_ip", name, fip["id"])
        return fip

    def delete_floating_ip(self, fip: dict) -> None:
        KINDS["floating_ip"].delete(self.client.request, fip["id"])
        self.untrack(fip.get("description") or "")

    # -- waiting for anything but a server --------------------------------------
    def poll(self, what: str, fetch: Callable[[], dict | None], done: Callable[[dict | None], bool],
             timeout: float, failed: Callable[[dict | None], str | None] | None = None) -> dict | None:
        """Call `fetch()` every poll interval until `done(seen)`; WaitError on `failed` or timeout."""
        timeout = self.bounded(timeout)
        deadline = time.monotonic() + timeout
        while True:
            gevent.sleep(self.options.status_poll_interval)
            seen = fetch()
            if failed is not None and (reason := failed(seen)):
                raise WaitError(f"{what} {reason}")
            if done(seen):
                return seen
            if time.monotonic() >= deadline:
                state = "gone" if seen is None else seen.get("status", "unchanged")
                raise WaitError(f"{what} still {state} after {timeout:g} s")

    # -- volumes -------------------------------------------------------------------
    def create_volume(self, size: int = 1, **extra: Any) -> dict:
        """Create a volume and wait until available (Rally's cinder.create_volume)."""
        name = self.resource_name("volume")
        with self.atomic("create_volume"):
            self.track("volume", name)
            volume = self.client.volume.post("/volumes", json={"volume": {"name": name, "size": size, **extra}},
                                             expect=(202,)).json()["volume"]
            self.track("volume", name, volume["id"])
            return self.wait_volume(volume, "available", self.options.build_timeout)

    def show(self, kind: str, resource_id: str, client: "OpenStackClient | None" = None) -> dict | None:
        """A resource's record (kinds.KINDS), None once it is gone."""
        return KINDS[kind].show((client or self.client).request, resource_id)

    def wait_volume(self, volume: dict, status: str, timeout: float) -> dict:
        def failed(seen: dict | None) -> str | None:
            if seen is None:
                return f"disappeared while waiting for {status}"
            return f"went to {seen['status']}" if seen["status"].startswith("error") else None
        return self.poll(f"volume {volume.get('name')} ({volume['id']})", lambda: self.show("volume", volume["id"]),
                         lambda seen: seen is not None and seen["status"] == status, timeout, failed)

    def delete_volume(self, volume: dict) -> None:
        """Delete a volume and wait until it is gone (Rally's cinder.delete_volume)."""
        with self.atomic("delete_volume"):
            self._delete_volume(volume["id"], volume.get("name") or volume["id"])

    def _delete_volume(self, volume_id: str, name: str) -> None:
        KINDS["volume"].delete(self.client.request, volume_id)
        self.poll(f"volume {name} ({volume_id})", lambda: self.show("volume", volume_id), lambda seen: seen is None,
                  self.options.delete_timeout,
                  lambda seen: f"went to {seen['status']} while deleting"
                  if seen is not None and seen["status"].startswith("error") else None)
        self.untrack(name)

    def attach_volume(self, server: dict, volume: dict, device: str | None = None) -> dict:
        """Attach through Nova and wait until the volume is in-use."""
        with self.atomic("attach_volume"):
            spec = {"volumeId": volume["id"], **({"device": device} if device else {})}
            attachment = self.compute.post(f"/servers/{server['id']}/os-volume_attachments",
                                           json={"volumeAttachment": spec}, expect=(200,)).json()
            self.wait_volume(volume, "in-use", self.options.build_timeout)
            return attachment["volumeAttachment"]

    def detach_volume(self, server: dict, volume: dict) -> None:
        """Detach through Nova and wait until the volume is available again."""
        with self.atomic("detach_volume"):
            self.compute.delete(f"/servers/{server['id']}/os-volume_attachments/{volume['id']}", expect=(202,))
            self.wait_volume(volume, "available", self.options.delete_timeout)

    # -- networking: floating IPs, ports, security groups --------------------------
    def external_network(self, wanted: str | None = None) -> str:
        """The id of the external network floating IPs come from (Tempest's floating_pool)."""
        networks = self.client.network.get("/v2.0/networks", params={"router:external": "True"}).json()["networks"]
        networks = [n for n in networks if n.get("router:external")]
        found = [n for n in networks if wanted in (n["id"], n.get("name"))] if wanted else networks[:1]
        if not found:
            raise ApiError(f"no external network {wanted or ''} to take floating IPs from; "
                           f"known: {', '.join(n.get('name') or n['id'] for n in networks) or 'none'}")
        return found[0]["id"]

    def allocate_floating_ip(self, pool: str | None = None) -> dict:
        """Allocate a floating IP from `pool` (default: the external network)."""
        with self.atomic("create_floating_ip"):
            return self.create_floating_ip(self.external_network(pool))

    def associate_floating_ip(self, fip: dict, server: dict) -> dict:
        """Point the floating IP at the server's port; wait until Neutron says ACTIVE."""
        with self.atomic("associate_floating_ip"):
            ports = self.client.network.get("/v2.0/ports", params={"device_id": server["id"]}).json()["ports"]
            if not ports:
                raise ApiError(f"server {server.get('name')} ({server['id']}) has no port: boot it on a "
                               f"network (--network) to give it a floating IP")
            port = ports[0]
            self.client.network.request("PUT", f"/v2.0/floatingips/{fip['id']}",
                                        json={"floatingip": {"port_id": port["id"]}}, expect=(200,))
            return self.poll(f"floating IP {fip['floating_ip_address']}", lambda: self.show("floating_ip", fip["id"]),
                             lambda seen: bool(seen) and seen["status"] == "ACTIVE" and seen["port_id"] == port["id"],
                             self.options.build_timeout,
                             lambda seen: "disappeared while associating" if seen is None else None)

    def disassociate_floating_ip(self, fip: dict, wait: bool = True) -> None:
        """Take the floating IP off its port; with `wait`, until Neutron shows it unbound."""
        with self.atomic("disassociate_floating_ip"):
            self.client.network.request("PUT", f"/v2.0/floatingips/{fip['id']}",
                                        json={"floatingip": {"port_id": None}}, expect=(200,))
            if wait:
                self.poll(f"floating IP {fip['floating_ip_address']}", lambda: self.show("floating_ip", fip["id"]),
                          lambda seen: seen is None or seen.get("port_id") is None, self.options.delete_timeout)

    def release_floating_ip(self, fip: dict) -> None:
        """Delete the floating IP and wait until it is gone."""
        with self.atomic("delete_floating_ip"):
            self.delete_floating_ip(fip)
            self.poll(f"floating IP {fip['floating_ip_address']}", lambda: self.show("floating_ip", fip["id"]),
                      lambda seen: seen is None, self.options.delete_timeout)

    def create_security_group(self, tcp_ports: tuple[int, ...] = (22,), icmp: bool = True) -> dict:
        """A security group letting in SSH (and ICMP), as Tempest's network actions made."""
        name = self.resource_name("secgroup")
        with self.atomic("create_security_group"):
            self.track("security_group", name)
            group = self.client.network.post("/v2.0/security-groups", json={"security_group": {
                "name": name, "description": "novastress"}}, expect=(201,)).json()["security_group"]
            self.track("security_group", name, group["id"])
            rules = [{"protocol": "tcp", "port_range_min": port, "port_range_max": port} for port in tcp_ports]
            rules += [{"protocol": "icmp"}] if icmp else []
            for rule in rules:
                self.client.network.post("/v2.0/security-group-rules", json={"security_group_rule": {
                    "security_group_id": group["id"], "direction": "ingress", "ethertype": "IPv4", **rule}},
                    expect=(201,))
            return group

    def delete_security_group(self, group: dict) -> None:
        with self.atomic("delete_security_group"):
            KINDS["security_group"].delete(self.client.request, group["id"])
            self.untrack(group["name"])

    # -- keypairs ----------------------------------------------------------------
    def create_keypair(self) -> dict:
        """A keypair Nova generates; the answer carries its private key (microversion < 2.92)."""
        name = self.resource_name("keypair")
        with self.atomic("create_keypair"):
            self.track("keypair", name, name)
            return self.compute.post("/os-keypairs", json={"keypair": {"name": name}}, expect=(200, 201),
                                     name="compute POST /os-keypairs").json()["keypair"]

    def delete_keypair(self, keypair: dict) -> None:
        with self.atomic("delete_keypair"):
            KINDS["keypair"].delete(self.client.request, keypair["name"])
            self.untrack(keypair["name"])

    # -- server actions ----------------------------------------------------------
    def server_action(self, server: dict, body: dict, status: str | None = "ACTIVE",
                      atomic: str | None = None) -> dict:
        """POST /servers/{id}/action and wait for `status` (None: do not wait)."""
        name = atomic or next(iter(body)).replace("os-", "")
        with self.atomic(name):
            before = time.time()
            request_id = request_id_of(self.compute.post(
                f"/servers/{server['id']}/action", json=body, expect=(202, 204),
                name=f"compute POST /servers/{{id}}/action {next(iter(body))}"))
            if status is None:
                return server
            done = self.wait_server(server["id"], server.get("name") or server["id"], status,
                                    self.options.build_timeout, since=before)
        self.nova_phases(server["id"], request_id)
        return done or server

    def nova_phases(self, server_id: str, request_id: str | None) -> None:
        """--server-timings: the action's instance-action events as NOVA rows (phases.py)."""
        if not request_id or not getattr(self.options, "server_timings", False):
            return
        try:
            newest = (self.state.profile.compute_microversions or (None, None))[1] if self.state.profile else None
            found = phases.read(self.client, server_id, request_id, self.options.status_poll_interval,
                                phases.microversion(newest))
        except ApiError as exc:   # its own failed row says why; the action itself succeeded
            LOG.debug("%s: no server timings for %s: %s", self.name, request_id, exc)
            return
        phases.report(self.environment.events, found)

    def _ids(self, tracked: Tracked) -> Iterator[str]:
        """The tracked resource's id, else the ids of what carries its name (a create whose answer
        was lost; looked for twice, it may still be in flight); each becomes its id while it is
        deleted, so a leak names what exists."""
        ids = [tracked.resource_id] if tracked.resource_id else []
        for attempt in range(0 if ids else 2):
            ids = KINDS[tracked.kind].named((tracked.owner or self.client).request, tracked.name)
            if ids or attempt:
                break
            gevent.sleep(self.options.status_poll_interval)
        for resource_id in ids:
            tracked.resource_id = resource_id
            yield resource_id

    def delete_tracked(self, tracked: Tracked) -> None:
        """Delete one tracked resource as its kind needs and wait until it is gone (servers,
        volumes, images; floating IPs, security groups and keypairs go at once)."""
        for resource_id in self._ids(tracked):
            if tracked.kind == "server":
                try:
                    self._delete_and_wait(resource_id, tracked.name)
                except WaitError as exc:
                    # a delete racing a build can leave the server in ERROR: delete it again
                    LOG.warning("%s: %s; deleting it again", self.name, exc)
                    self._delete_and_wait(resource_id, tracked.name)
            elif tracked.kind == "volume":
                self._delete_volume_when_free(resource_id, tracked.name)
            elif tracked.kind == "image":
                self.delete_image(resource_id, tracked.name, tracked.owner)
            else:
                KINDS[tracked.kind].delete(self.client.request, resource_id)
        self.untrack(tracked.name)

    def _delete_volume_when_free(self, volume_id: str, name: str) -> None:
        """A volume still being created, or whose server was just deleted (it detaches on its own),
        cannot be deleted yet: wait for that first. One held for a server that is gone is reset:
        in-use at once (its detach was lost), reserved or attaching once the wait is over (the
        attach that raced the delete was lost, Nova will not take the reservation back)."""
        what, show = f"volume {name} ({volume_id})", lambda: self.show("volume", volume_id)
        seen = show()
        if seen is not None and seen["status"] in VOLUME_BUSY:
            try:
                seen = self.poll(what, show, lambda s: s is None or s["status"] not in VOLUME_BUSY or
                                 (s["status"] == "in-use" and bool(self._stranded(s))), self.options.delete_timeout)
            except WaitError:
                seen = show()
                if seen is None or not self._stranded(seen):
                    raise
        if seen is not None and seen["status"] in VOLUME_BUSY and self._stranded(seen):
            seen = self._reset_stranded(seen, name)
        if seen is not None and seen["status"] == "deleting":  # stopped while deleting it: only the wait is left
            self.poll(what, show, lambda s: s is None, self.options.delete_timeout)
        elif seen is not None:
            self._delete_volume(volume_id, name)

    def delete_image(self, image_id: str, name: str, client: "OpenStackClient | None" = None) -> None:
        """Delete an image once written: a snapshot still being saved is waited for (deleting it
        would cut the snapshot short); already gone (a racing server DELETE took it) is fine."""
        client = client or self.client
        seen = self.show("image", image_id, client)
        if seen is not None and seen["status"] in IMAGE_BUSY:
            # a cloud whose snapshots never finish (seen once) is not waited for again
            timeout = 0.0 if self.state.snapshots_stuck else self.options.snapshot_timeout
            try:
                seen = self.poll(f"image {name} ({image_id})", lambda: self.show("image", image_id, client),
                                 lambda s: s is None or s["status"] not in IMAGE_BUSY, timeout)
            except WaitError:
                if not self.being_stopped() and not self.state.snapshots_stuck:
                    self.state.snapshots_stuck = True
                    LOG.warning("%s: snapshot image %s still %s after %g s (--snapshot-timeout): deleting it "
                                "as it is; later snapshots of this run are not waited for", self.name, name,
                                seen["status"], timeout)
        if seen is not None:
            KINDS["image"].delete(client.request, image_id)
        self.untrack(name)

    def _stranded(self, volume: dict) -> list[str]:
        """Ids of the servers a busy volume is held for, when every one of them is gone; [] while
        any exists or none is known."""
        try:
            held_for = volume_held_for(self.client.request, volume)
        except (ApiError, ValueError):
            return []
        exists = (self.compute.get(f"/servers/{server_id}", expect=(200, 404)).status_code == 200
                  for server_id in held_for)
        return [] if any(exists) else held_for

    def _reset_stranded(self, volume: dict, name: str) -> dict | None:
        """Only an admin can free a volume held for a server that is gone: reset it (available,
        detached) with the --os-admin-* credentials (else the run's own), or say exactly what is
        left and why."""
        status = volume["status"]
        gone = ", ".join(self._stranded(volume))
        what = ("attached to server {} which no longer exists (a lost detach)" if status == "in-use" else
                "reserved for server {} which no longer exists (an attach that raced its delete)").format(gone)
        admin = OpenStackClient(self.state, self.state.admin_target(), f"{self.name}-admin")
        try:
            reset_volume(admin.request, volume["id"])
        except ApiError as exc:
            raise ApiError(f"volume {name} ({volume['id']}) is still {status}, {what}; an admin must reset it "
                           f"(--os-admin-username or novastress-cleanup with admin credentials): {exc}") from None
        LOG.warning("%s: volume %s stayed %s, %s; reset it as admin", self.name, name, status, what)
        return self.show("volume", volume["id"])

    # -- cleanup ---------------------------------------------------------------
    def cleanup(self) -> None:
        """Delete every tracked resource and wait until it is gone; what cannot be is a leak."""
        if self.options.leave_dirty_stack:
            return
        # in the kinds' order: servers first, their deletion detaches volumes and frees ports
        for tracked in sorted(self.tracked.values(), key=lambda t: KINDS[t.kind].order):
            try:
                if not self.client.has_service(KINDS[tracked.kind].service):
                    # its service is not in the catalog: the create never reached a cloud
                    self.untrack(tracked.name)
                    continue
                self.delete_tracked(tracked)
            except GreenletExit:
                raise
            except Exception as exc:
                reason = first_line(exc)
                if tracked.resource_id is None:
                    # not even found by name: whether it exists is for the final sweep to tell (it
                    # lists every name of the run); a leak is something that exists, by id
                    LOG.warning("%s could not look for %s %s: %s; the final sweep will", self.name,
                                tracked.kind, tracked.name, reason)
                else:
                    self.state.leaks.append(Leak(tracked.kind, tracked.name, tracked.resource_id, reason))
                    LOG.error("%s could not delete %s %s: %s", self.name, tracked.kind, tracked.name, reason)
                self.untrack(tracked.name)


class Atomic(timed):
    """NovaUser.atomic's step: the user's innermost step while it runs (a wait that ends it says
    when the server changed)."""

    __slots__ = ("user", "outer")

    def __init__(self, user: NovaUser, name: str) -> None:
        super().__init__(user.environment.events, "ATOMIC", name, describe=user._generalized, counts=user._reported)
        self.user = user

    def __enter__(self) -> "Atomic":
        self.outer, self.user._step = self.user._step, self
        return super().__enter__()

    def __exit__(self, kind, error, traceback) -> None:
        self.user._step = self.outer
        super().__exit__(kind, error, traceback)


def action(function: Callable[[NovaUser], Any]) -> Callable[[NovaUser], Any]:
    """Make `function(user)` a Locust task timed as one ACTION named after it."""
    def task(user: NovaUser) -> Any:
        with user.action(function.__name__):
            return function(user)
    task.__name__ = function.__name__
    task.__doc__ = function.__doc__
    return task


__all__ = ["NovaUser", "OpenStackClient", "ServiceClient", "ApiError", "action", "template"]
