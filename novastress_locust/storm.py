"""Contention storms: users of a process share a pool of servers and race actions on them.

    from novastress_locust.actions.storm import storm
    from novastress_locust.storm import StormUser

    class Storm(StormUser):
        tasks = [storm]

Each storm round picks a random pool member and fires a random lifecycle action at it
(soft/hard reboot, stop/start, pause/unpause, suspend/resume, lock/unlock, shelve/unshelve,
rebuild, resize and its confirm/revert, a snapshot (createImage; its image is deleted once
written, or by Nova when a racing DELETE cuts it short), a volume attach, a floating-IP association) with one
of two credentials — the run's own and a
peer (`--storm-peer`: the admin, or a second user of the project); a fraction of them
(`--storm-double-ratio`) goes out together with a second state change by the other
credential, inside the API's check-then-save window. A fraction of the accepted
actions (`--storm-delete-ratio`) is raced by a DELETE 0–2 s later (`--storm-delete-delay-*`), at a
random moment or while the action is still seen in progress (`--storm-delete-timing`);
the pool refills with fresh servers. `attach_volume` creates a volume and attaches it to the
member without waiting; `associate_floating_ip` allocates a floating IP and binds it to the
member's port without waiting (raced, the association is re-sent until the port is gone, so one
is in flight when the delete releases it). Either round takes its volume / floating IP back —
detached or unbound, then deleted — even when the server is gone. Some rounds
(`--storm-group-ratio`) are server-group bursts: N simultaneous boots into an affinity or
anti-affinity group, checked against the policy and (admin) the host count; an anti-affinity
burst has one member more than the cloud has hosts, so two of them must race for one host. Some
(`--storm-plan-ratio`) run a race plan, the races random rounds seldom line up: the member is
shelved and, once it is, unshelved and deleted while the unshelve is in flight; or a volume
attach / floating-IP association is deleted while it is in flight.

A 409 is the API correctly refusing a racing request: it is counted on its own `CONFLICT`
row, not as a failure (`--storm-conflict-fails` makes it one). A 5xx fails the action with
its request id. Every deleted server is handed to the invariant checks (`invariants.py`),
with the volumes and floating IPs the storm put on it: they must come off it once it is gone.
"""
from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import gevent
from gevent.lock import Semaphore
from locust import events

from .cloudprofile import RESIZE, CloudProfile, Needs, Skip
from .invariants import invariants
from .state import OPTION_CHECKS, run_state
from .greenlets import joined, spawn_kept
from .client import ApiError, OpenStackClient, generalize
from .errors import error_message
from .kinds import KINDS
from .user import NovaUser
from .waiter import WaitError

LOG = logging.getLogger("novastress")
DEFAULT_GROUP_POLICIES = ("affinity", "anti-affinity")


@dataclass
class Member:
    """A pool server: who booted it (and tracks it) and its name."""

    id: str
    name: str
    owner: NovaUser


@dataclass
class StormState:
    """The pool and the peer credential of one process."""

    members: dict[str, Member] = field(default_factory=dict)
    booting: int = 0
    peer_target: Any = None
    peer_user: tuple[str, str] | None = None      # (user id, admin client) to delete at the end
    peer_lock: Semaphore = field(default_factory=Semaphore)
    peer_resolved: bool = False
    rng: random.Random = field(default_factory=random.Random)


def storm_state(environment) -> StormState:
    state = run_state(environment)
    if state.storm is None:
        state.storm = StormState()
    return state.storm


# action name -> (request body for a server, statuses in which Nova accepts it)
def _body(key: str, value: Any = None) -> Callable[[NovaUser, dict], dict]:
    return lambda user, server: {key: value}


def _snapshot_body(user: NovaUser, server: dict) -> dict:
    """createImage with a run-prefixed name, tracked before the POST: an unanswered one is found by name."""
    name = user.resource_name("image")
    user.track("image", name)
    return {"createImage": {"name": name}}


ACTIONS: dict[str, tuple[Callable[[NovaUser, dict], dict], tuple[str, ...]]] = {
    "soft_reboot": (lambda u, s: {"reboot": {"type": "SOFT"}}, ("ACTIVE",)),
    "hard_reboot": (lambda u, s: {"reboot": {"type": "HARD"}}, ("ACTIVE", "SHUTOFF", "PAUSED", "SUSPENDED")),
    "stop": (_body("os-stop"), ("ACTIVE",)),
    "start": (_body("os-start"), ("SHUTOFF",)),
    "pause": (_body("pause"), ("ACTIVE",)),
    "unpause": (_body("unpause"), ("PAUSED",)),
    "suspend": (_body("suspend"), ("ACTIVE",)),
    "resume": (_body("resume"), ("SUSPENDED",)),
    "lock": (_body("lock"), ("ACTIVE", "SHUTOFF", "PAUSED", "SUSPENDED", "SHELVED_OFFLOADED", "VERIFY_RESIZE")),
    "shelve": (_body("shelve"), ("ACTIVE", "SHUTOFF", "PAUSED", "SUSPENDED")),
    "unshelve": (_body("unshelve"), ("SHELVED", "SHELVED_OFFLOADED")),
    "rebuild": (lambda u, s: {"rebuild": {"imageRef": u.state.boot_args().image_id}}, ("ACTIVE", "SHUTOFF")),
    "resize": (lambda u, s: {"resize": {"flavorRef": _resize_target(u, s)}}, ("ACTIVE", "SHUTOFF")),
    "confirm_resize": (_body("confirmResize"), ("VERIFY_RESIZE",)),
    "revert_resize": (_body("revertResize"), ("VERIFY_RESIZE",)),
    "snapshot": (_snapshot_body, ("ACTIVE", "SHUTOFF", "PAUSED", "SUSPENDED")),
}


# what a storm action needs of the cloud besides compute; the others need nothing more
NEEDS: dict[str, Needs] = {
    "resize": RESIZE, "confirm_resize": RESIZE, "revert_resize": RESIZE,
    "snapshot": Needs(services=("image",)),          # the round deletes the snapshot's image
    "attach_volume": Needs(services=("volume",)),
    "associate_floating_ip": Needs(services=("network",), floating_ip=True),
}


def fit_actions(arguments: dict, options, profile: CloudProfile) -> tuple[dict | None, list[Skip]]:
    """--storm-actions narrowed to what the cloud can run (the options reach the workers so); the
    storm is skipped when none can."""
    skips: list[Skip] = []
    kept: list[str] = []
    for name in enabled_actions(options.storm_actions):
        reason = profile.lacks(NEEDS[name], name) if name in NEEDS else None
        if reason:
            skips.append(Skip("storm action", name, reason))
        else:
            kept.append(name)
    if not kept:
        return None, skips + [Skip("", "storm", "none of its --storm-actions can run on this cloud")]
    if skips:
        options.storm_actions = ",".join(kept)
    return arguments, skips


def enabled_actions(selection: str) -> list[str]:
    """`all` or a comma list of ACTIONS / RESOURCE_ACTIONS names; ValueError names an unknown one."""
    known = [*ACTIONS, *RESOURCE_ACTIONS]
    if selection in ("all", "", None):
        return known
    names = [name.strip() for name in selection.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"--storm-actions: unknown action {', '.join(unknown)} (known: {', '.join(known)})")
    return names


def _statuses(name: str) -> tuple[str, ...]:
    """The server statuses in which the cloud accepts this storm action."""
    return (ACTIONS.get(name) or RESOURCE_ACTIONS[name])[1]


def _resize_target(user: NovaUser, server: dict) -> str:
    """The boot flavor, or the next bigger one when the server already has the boot flavor."""
    from .actions.lifecycle import _other_flavor
    boot = user.state.boot_args().flavor_id
    current = str((server.get("flavor") or {}).get("id", boot))
    return _other_flavor(user, None) if current == boot else boot


class StormUser(NovaUser):
    """A user of the storm: shares its process's pool; its tasks come from the locustfile."""

    abstract = True
    invariants = True   # turns the invariant checks on for the run

    def on_stop(self) -> None:
        # another user may hold a lock on a server this one booted (its lock window): unlock
        # first, with the admin peer when there is one, so the cleanup's DELETE is not refused
        if self.client is not None:
            storm = storm_state(self.environment)
            peer = self.__dict__.get("storm_peer")
            for tracked in list(self.tracked.values()):
                member = storm.members.get(tracked.resource_id or "")
                if tracked.kind == "server" and member is not None:
                    try:
                        _unlock(member.id, peer or self.client, self.client if peer else None)
                    except ApiError as exc:
                        LOG.warning("%s could not unlock %s: %s", self.name, member.id, exc)
        super().on_stop()

    def unlock_server(self, server_id: str) -> None:
        """The peer (an admin) may hold the lock: unlock with it first, then as the owner."""
        peer = self.__dict__.get("storm_peer")
        _unlock(server_id, peer or self.client, self.client if peer else None)

    def cleanup(self) -> None:
        """A failed round deletes this user's pool servers: they leave the pool, and their deletes
        (which may race another user's action on them) are followed by the invariants too."""
        storm = storm_state(self.environment)
        pool = [tracked.resource_id for tracked in self.tracked.values()
                if tracked.kind == "server" and tracked.resource_id in storm.members]
        for server_id in pool:   # no other round picks them meanwhile; the failed action owns the deletes
            storm.members.pop(server_id, None)
            _touch(self, server_id)
        if self.client is not None and not self.options.leave_dirty_stack:
            # a volume this user attached to another user's live server: off it, or it cannot be deleted
            try:
                for server_id, volume_id in _attached_volumes(self):
                    _detach(self, server_id, volume_id, quick=True)
            except ApiError as exc:
                LOG.warning("%s could not detach its volumes: %s", self.name, exc)
        super().cleanup()
        checks = invariants(self.environment)
        for server_id in pool if checks.active else []:
            checks.watch_delete(server_id, self.client)


# -- one storm round ---------------------------------------------------------------------
def peer_client(user: NovaUser) -> OpenStackClient | None:
    """The user's client for the second credential (None: --storm-peer none or unavailable)."""
    if "storm_peer" not in user.__dict__:
        target = _peer_target(user)
        user.__dict__["storm_peer"] = OpenStackClient(user.state, target, f"{user.name}-peer") if target else None
    return user.__dict__["storm_peer"]


def _peer_target(user: NovaUser):
    storm = storm_state(user.environment)
    with storm.peer_lock:   # one user resolves it (and maybe makes a Keystone user) for the process
        if not storm.peer_resolved:
            storm.peer_resolved = True
            storm.peer_target = _resolve_peer(user, storm)
    return storm.peer_target


def _resolve_peer(user: NovaUser, storm: StormState):
    kind = user.options.storm_peer
    if kind == "none":
        return None
    admin = invariants(user.environment).admin()
    if admin is None:
        LOG.warning("novastress: --storm-peer %s needs admin credentials; the storm uses one credential", kind)
        return None
    if kind == "admin":
        return admin.target
    return _make_peer_member(user, admin, storm)


def _make_peer_member(user: NovaUser, admin: OpenStackClient, storm: StormState):
    """A second user with the member role in the run's project, made through Keystone."""
    import secrets
    from .credentials import CloudTarget
    keystone = admin.identity
    project_id = user.client.session.get_project_id()
    name = f"{user.state.prefix}-{user.state.run_id}-{user.state.process_tag}-storm-peer"
    password = secrets.token_urlsafe(18)
    created = keystone.post("/v3/users", json={"user": {"name": name, "password": password, "domain_id": "default",
                                                         "default_project_id": project_id}},
                            expect=(201,)).json()["user"]
    storm.peer_user = (created["id"], admin)
    role = keystone.get("/v3/roles", params={"name": "member"}).json()["roles"][0]["id"]
    keystone.request("PUT", f"/v3/projects/{project_id}/users/{created['id']}/roles/{role}", expect=(204,))
    base = user.client.target
    auth = {"auth_url": base.auth.get("auth_url"), "username": name, "password": password,
            "project_id": project_id, "user_domain_id": "default"}
    return CloudTarget("password", auth, "storm peer", base.region_name, base.interface, base.verify)


def storm_round(user: NovaUser) -> None:
    """One round: refill the pool, or a group burst, or an action (maybe raced by a DELETE)."""
    storm = storm_state(user.environment)
    opts = user.options
    rng = storm.rng
    if len(storm.members) + storm.booting < opts.storm_pool_size:
        refill(user, storm)
        return
    if opts.storm_group_size >= 0 and rng.random() < opts.storm_group_ratio:
        server_group_burst(user)
        return
    member = rng.choice(list(storm.members.values())) if storm.members else None
    if member is None:
        return
    checks = invariants(user.environment)
    record = user.client.action
    peer = peer_client(user)
    if peer is not None:
        peer.action = record
    try:
        server = _show(user, member.id)
        if server is None:
            _forget(storm, member)
            return
        # only rounds that found the server touched it: a violation lists the actions that raced on it
        _touch(user, member.id)
        if server["status"] == "ERROR":
            _delete(user, storm, member, user.client, checks)
            return
        names = enabled_actions(opts.storm_actions)
        plans = [plan for plan in PLANS if plan in names]
        if plans and rng.random() < getattr(opts, "storm_plan_ratio", 0.0) and \
                race_plan(user, storm, member, rng.choice(plans), server, peer, checks):
            return
        name = _choose(rng, names, server["status"])
        if name in RESOURCE_ACTIONS:   # a volume or floating IP put on the member, then taken back
            resource_round(user, storm, member, name, peer, checks)
            return
        client = rng.choice([user.client, peer]) if peer is not None else user.client
        if name != "lock" and rng.random() < getattr(opts, "storm_double_ratio", 0.0):
            other = (user.client if client is peer else peer) if peer is not None else client
            second = _choose(rng, [n for n in names if n != "lock" and n in ACTIONS] or [name], server["status"])
            accepted = fire_together(user, [(client, name), (other, second)], member, server)
        else:
            accepted = fire(user, client, member, name, server)
        if accepted is None:
            _forget(storm, member)
            return
        if accepted is False and record is not None:   # refused: the round changed nothing there
            checks.refused(member.id, record.global_request_id)
        try:
            if accepted and rng.random() < opts.storm_delete_ratio:
                _race_delete(user, storm, member, peer, checks, lambda: _server_busy(user, member))
            elif accepted and name == "lock":
                gevent.sleep(rng.uniform(0, 0.5))  # others meet the lock meanwhile
        finally:
            if accepted and name == "lock":
                _unlock(member.id, client, peer if client is user.client else user.client)
        _finish_snapshots(user)
    finally:
        if peer is not None:
            peer.action = None


def _unlock(server_id: str, client: OpenStackClient, other: OpenStackClient | None) -> None:
    """The server must not stay locked: cleanup and the sweep delete it as its owner. When the
    other credential (an admin) locked it meanwhile, only that one may unlock it (403 here)."""
    for unlocker in (client, other):
        if unlocker is None:
            continue
        response = unlocker.compute.post(f"/servers/{server_id}/action", json={"unlock": None},
                                         expect=(202, 403, 404, 409),
                                         name="compute POST /servers/{id}/action unlock")
        if response.status_code != 403:
            return


# the way back from a state an earlier action left the server in: half the time a round takes it,
# as servers in use come back (and the way back — unshelve above all — races a DELETE too)
WAY_BACK = {"SHELVED": ("unshelve",), "SHELVED_OFFLOADED": ("unshelve",), "SHUTOFF": ("start",),
            "PAUSED": ("unpause",), "SUSPENDED": ("resume",), "VERIFY_RESIZE": ("confirm_resize", "revert_resize")}


def _choose(rng: random.Random, names: list[str], status: str) -> str:
    """Often the way back from where the server is; else mostly an action Nova accepts in this
    status; sometimes any, to provoke refusals."""
    back = [n for n in WAY_BACK.get(status, ()) if n in names]
    if back and rng.random() < 0.5:
        return rng.choice(back)
    fitting = [n for n in names if status in _statuses(n)]
    return rng.choice(fitting if fitting and rng.random() < 0.7 else names)


def fire(user: NovaUser, client: OpenStackClient, member: Member, name: str, server: dict) -> bool | None:
    """POST the action: True when accepted, False when refused (409), None when the server is gone."""
    build, _ = ACTIONS[name]
    body = build(user, server)
    key = next(iter(body))
    expect = (200, 202, 204, 404, 409) + ((400,) if key == "resize" else ())
    response = client.compute.post(f"/servers/{member.id}/action", json=body, expect=expect,
                                   name=f"compute POST /servers/{{id}}/action {key}")
    if key == "createImage":
        _snapshot_accepted(user, client, body[key]["name"], response)
    if response.status_code == 404:
        return None
    if response.status_code == 400:
        message = error_message(response)
        if "must change flavor" not in message:  # raced a revert: the flavor changed under us
            raise ApiError(f"compute POST /servers/{{id}}/action resize -> 400 {message}", 400)
    if response.status_code in (400, 409):
        conflict(user, name, response)
        return False
    return True


def _snapshot_accepted(user: NovaUser, client: OpenStackClient, name: str, response) -> None:
    """Note the image a createImage made (2.45+: in the body, before: the Location header);
    a refused one made none."""
    if response.status_code not in (200, 202):
        user.untrack(name)
        return
    try:
        image_id = response.json()["image_id"]
    except (ValueError, KeyError, TypeError):
        image_id = response.headers.get("Location", "").rstrip("/").rpartition("/")[2]
    user.track("image", name, image_id or None, owner=client if client is not user.client else None)
    user.__dict__.setdefault("storm_snapshots", []).append((name, image_id, client))


def _finish_snapshots(user: NovaUser) -> None:
    """Delete the images this round's snapshots made, each once its snapshot is done (active); a
    racing server DELETE may have deleted a partial one already (404). The client that asked for
    the snapshot deletes it: Glance lets the image's owner, or an admin, delete it."""
    pending = user.__dict__.pop("storm_snapshots", [])
    for name, image_id, client in pending:
        if image_id:   # else the user's cleanup finds it by name
            user.delete_image(image_id, name, client)


def fire_together(user: NovaUser, shots: list[tuple[OpenStackClient, str]], member: Member,
                  server: dict) -> bool | None:
    """Two state changes of one server sent at the same moment (two clients racing): True when
    one was accepted, None when the server is gone; the first error (a 5xx) is raised after both."""
    greenlets = [spawn_kept(fire, user, client, member, name, server) for client, name in shots]
    results = joined(greenlets, user.options.request_timeout * 2)
    if any(result is True for result in results):
        return True
    return None if None in results else False


def conflict(user: NovaUser, name: str, response) -> None:
    """A 409 on its own row: the API refusing a racing request is right, unless the option says not."""
    request_id = response.headers.get("x-openstack-request-id")
    message = f"{name} -> {response.status_code} {error_message(response)} [{request_id}]"
    error = ApiError(message, response.status_code) if user.options.storm_conflict_fails else None
    user.environment.events.request.fire(
        request_type="CONFLICT", name=name, response_time=0, response_length=0,
        exception=error and generalize(message, user.state.names), context={"request_id": request_id})
    if error is not None:
        raise error


def refill(user: NovaUser, storm: StormState) -> None:
    """Boot a pool member; a fraction of the boots is raced by a DELETE instead (delete during build)."""
    opts = user.options
    if storm.rng.random() < opts.storm_delete_ratio:
        boot_raced_by_delete(user, storm)
        return
    storm.booting += 1
    try:
        server = user.boot_server()
    finally:
        storm.booting -= 1
    name = server.get("name") or next(t.name for t in user.tracked.values() if t.resource_id == server["id"])
    storm.members[server["id"]] = Member(server["id"], name, user)
    _touch(user, server["id"])


def boot_raced_by_delete(user: NovaUser, storm: StormState) -> None:
    """POST a server, then DELETE it 0-2 s after the 202, while it is likely still building."""
    name = user.resource_name("server")
    with user.atomic("boot_raced_by_delete"):
        user.track("server", name)
        body = {"name": name, "imageRef": user.state.boot_args().image_id,
                "flavorRef": user.state.boot_args().flavor_id, "networks": user.state.boot_args().networks}
        created = user.compute.post("/servers", json={"server": body}, expect=(202,)).json()["server"]
        user.track("server", name, created["id"])
        _touch(user, created["id"])
        member = Member(created["id"], name, user)
        _race_wait(user, storm, lambda: _server_busy(user, member))
        _delete(user, storm, member, user.client, invariants(user.environment))


def _touch(user: NovaUser, server_id: str) -> None:
    record = user.client.action
    if record is None:
        return
    if server_id not in record.resource_ids:
        record.resource_ids.append(server_id)
        user.client.index.note(record, server_id)
    invariants(user.environment).touched(server_id, record.global_request_id)


def _forget(storm: StormState, member: Member) -> None:
    if storm.members.pop(member.id, None) is not None:
        member.owner.untrack(member.name)


def _delete(user: NovaUser, storm: StormState, member: Member, client: OpenStackClient, checks) -> bool:
    """DELETE a pool member; once accepted it leaves the pool and the invariants follow it.
    True when this DELETE was accepted (204)."""
    response = client.compute.delete(f"/servers/{member.id}", expect=(204, 404, 409),
                                     name="compute DELETE /servers/{id} (storm)")
    if response.status_code == 409:
        conflict(user, "delete", response)
        return False
    storm.members.pop(member.id, None)
    if response.status_code == 204:
        checks.watch_delete(member.id, client)
    # the owner's cleanup would delete it again; the invariants wait for the 404 instead
    member.owner.untrack(member.name)
    return response.status_code == 204


IN_FLIGHT_POLL = 0.1   # seconds between two looks at an action in progress before a racing DELETE


def _race_delete(user: NovaUser, storm: StormState, member: Member, peer: OpenStackClient | None,
                 checks, in_flight: Callable[[], bool] | None = None, timing: str | None = None) -> bool:
    """DELETE the member --storm-delete-delay-* after its action, with either credential: at a
    uniformly random moment, or (--storm-delete-timing, or `timing`) while `in_flight()` still sees
    the action in progress — the window a real race needs is often shorter than the delay range."""
    _race_wait(user, storm, in_flight, timing)
    deleter = storm.rng.choice([user.client, peer]) if peer is not None else user.client
    return _delete(user, storm, member, deleter, checks)


def _race_wait(user: NovaUser, storm: StormState, in_flight: Callable[[], bool] | None,
               timing: str | None = None) -> None:
    """The pause before a racing DELETE (see _race_delete)."""
    opts = user.options
    low, high = sorted((max(0.0, opts.storm_delete_delay_min), max(0.0, opts.storm_delete_delay_max)))
    timing = timing or getattr(opts, "storm_delete_timing", "uniform")
    if timing == "mixed":
        timing = storm.rng.choice(("uniform", "in-flight"))
    if timing == "in-flight" and in_flight is not None:
        deadline = time.monotonic() + high
        gevent.sleep(low)
        # each look that still sees the action going is a coin toss: the DELETE lands early or late in it
        while time.monotonic() < deadline and in_flight() and storm.rng.random() < 0.5:
            gevent.sleep(min(IN_FLIGHT_POLL, max(0.0, deadline - time.monotonic())))
    else:
        gevent.sleep(storm.rng.uniform(low, high))


def _show(user: NovaUser, server_id: str) -> dict | None:
    """The server as the storm sees it now; None once it is gone (404)."""
    response = user.compute.get(f"/servers/{server_id}", expect=(200, 404), name="compute GET /servers/{id} (storm)")
    return None if response.status_code == 404 else response.json()["server"]


def _server_busy(user: NovaUser, member: Member) -> bool:
    """Whether the member still has an action in progress (a task_state); gone counts as not."""
    server = _show(user, member.id)
    return server is not None and server.get("OS-EXT-STS:task_state") is not None


def _holding(user: NovaUser, member: Member, held: list["Held"]) -> bool:
    """Whether a volume attach / floating-IP association of this round is still in progress."""
    for item in held:
        if item.kind == "volume":
            seen = user.show("volume", item.resource["id"])
            if seen is not None and seen["status"] in SETTLING:
                return True
        else:
            seen = user.show("floating_ip", item.resource["id"])
            if seen is not None and seen.get("status") == "DOWN" and seen.get("port_id") == item.port_id:
                return True
    return False


# -- volumes and floating IPs put on pool members -----------------------------------------
# Nova attaches a volume in vm_states active, paused, stopped, suspended, resized, shelved and
# shelved_offloaded; Neutron binds a floating IP to the port whatever the server is doing
ATTACHABLE = ("ACTIVE", "PAUSED", "SHUTOFF", "SUSPENDED", "VERIFY_RESIZE", "SHELVED", "SHELVED_OFFLOADED")
REASSOCIATIONS = 100     # at most this many re-sent associations while a racing delete runs
SETTLING = ("reserved", "attaching")


@dataclass
class Held:
    """A volume or floating IP a round put on a pool member; the same round takes it back."""

    kind: str                   # "volume" or "floating_ip"
    resource: dict              # the volume / floating IP as created
    port_id: str | None = None  # floating IP: the member's port it was bound to


def resource_round(user: NovaUser, storm: StormState, member: Member, name: str,
                   peer: OpenStackClient | None, checks, planned: bool = False) -> None:
    """Put a volume or floating IP on the member without waiting, maybe race it with a DELETE
    (`planned`: always, while the attach / association is in flight), then take it back
    (detached / unbound, deleted), also when the server is gone meanwhile."""
    opts = user.options
    put, _ = RESOURCE_ACTIONS[name]
    held: list[Held] = []
    try:
        accepted = put(user, member, held)
        if accepted is None:
            _forget(storm, member)
        elif accepted and (planned or storm.rng.random() < opts.storm_delete_ratio):
            if _race_delete(user, storm, member, peer, checks, lambda: _holding(user, member, held),
                            "in-flight" if planned else None):
                for item in held:
                    if item.kind == "floating_ip":
                        _keep_associating(user, item)
        for item in held:
            _settle(user, item, member)
        if member.id not in storm.members:
            # the delete (this round's or another's) is followed by the invariants: they must see
            # what it left before the volume / floating IP is released
            checks.wait_checked(member.id, opts.invariant_delete_timeout + opts.invariant_allocation_timeout)
        for item in held:
            _release(user, item, member, gone=member.id not in storm.members)
    except Exception:
        # the action's cleanup deletes what this user tracks: a volume must be off the server first
        for item in held:
            if item.kind == "volume":
                _detach(user, member.id, item.resource["id"], quick=True)
        raise


def attach_volume(user: NovaUser, member: Member, held: list[Held]) -> bool | None:
    """A new volume attached to the member through Nova, not waited for: True when accepted,
    False when refused (409), None when the server is gone."""
    volume = user.create_volume()
    held.append(Held("volume", volume))
    response = user.compute.post(f"/servers/{member.id}/os-volume_attachments", expect=(200, 404, 409),
                                 json={"volumeAttachment": {"volumeId": volume["id"]}},
                                 name="compute POST /servers/{id}/os-volume_attachments (storm)")
    if response.status_code == 404:
        return None
    if response.status_code == 409:
        conflict(user, "attach_volume", response)
        return False
    invariants(user.environment).attached(member.id, volume["id"])
    return True


def associate_floating_ip(user: NovaUser, member: Member, held: list[Held]) -> bool | None:
    """A new floating IP bound to the member's port, not waited for: True when accepted, False
    when refused (409), the port is gone, or the cloud has no external network / the server no port."""
    network = _external_network(user)
    if network is None:
        return False
    ports = user.client.network.get("/v2.0/ports", params={"device_id": member.id},
                                    name="network GET /v2.0/ports?device_id (storm)").json()["ports"]
    if not ports:
        return False
    with user.atomic("create_floating_ip"):
        fip = user.create_floating_ip(network)
    item = Held("floating_ip", fip, ports[0]["id"])
    held.append(item)
    response = _associate(user, item)
    if response.status_code == 404:   # the port went with its server meanwhile
        return False
    if response.status_code == 409:
        conflict(user, "associate_floating_ip", response)
        return False
    invariants(user.environment).associated(member.id, fip["id"])
    return True


def _associate(user: NovaUser, item: Held, name: str = "network PUT /v2.0/floatingips/{id} (storm)"):
    return user.client.network.request("PUT", f"/v2.0/floatingips/{item.resource['id']}",
                                       json={"floatingip": {"port_id": item.port_id}},
                                       expect=(200, 404, 409), name=name)


def _keep_associating(user: NovaUser, item: Held) -> None:
    """The server's DELETE was accepted: re-send the association until its port is gone (404),
    so that one is in flight when the delete releases the port — the window is short."""
    interval = min(0.05, user.options.status_poll_interval)
    deadline = time.monotonic() + user.options.delete_timeout
    for _ in range(REASSOCIATIONS):
        if _associate(user, item, "network PUT /v2.0/floatingips/{id} (storm re-association)"
                      ).status_code != 200 or time.monotonic() >= deadline:
            return
        gevent.sleep(interval)


def _external_network(user: NovaUser) -> str | None:
    """The external network's id, looked up once per process; None (said once) without one."""
    cache = user.state.__dict__
    if "storm_external_network" not in cache:
        try:
            cache["storm_external_network"] = user.external_network()
        except ApiError as exc:
            LOG.warning("novastress: the storm associates no floating IPs: %s", exc)
            cache["storm_external_network"] = None
    return cache["storm_external_network"]


def _settle(user: NovaUser, item: Held, member: Member) -> None:
    """Wait until the attach / association is done one way or the other (bounded)."""
    if item.kind == "volume":
        user.poll(f"volume {item.resource['name']} ({item.resource['id']})",
                  lambda: user.show("volume", item.resource["id"]),
                  lambda seen: seen is None or seen["status"] not in SETTLING, user.options.build_timeout)
    else:
        user.poll(f"floating IP {item.resource['floating_ip_address']}",
                  lambda: user.show("floating_ip", item.resource["id"]),
                  lambda seen: seen is None or seen["status"] != "DOWN" or seen.get("port_id") != item.port_id,
                  user.options.build_timeout)


def _release(user: NovaUser, item: Held, member: Member, gone: bool) -> None:
    """Detach / unbind (unless the server is gone), then delete and wait until it is gone."""
    if item.kind == "floating_ip":
        if not gone:
            user.disassociate_floating_ip(item.resource, wait=False)
        user.release_floating_ip(item.resource)
        return
    tracked = user.tracked.get(item.resource["name"])
    if tracked is None:
        return
    if not gone:
        _detach(user, member.id, item.resource["id"])
    # waits out a detach in progress; a volume left attached to a gone server is reset as admin
    user.delete_tracked(tracked)


def _detach(user: NovaUser, server_id: str, volume_id: str, quick: bool = False) -> None:
    """Detach the volume from the server; a 409 (the server is busy or locked) is tried again until
    --delete-timeout (once when `quick`); 404: not attached (any more)."""
    deadline = time.monotonic() + (0 if quick else user.options.delete_timeout)
    while True:
        try:
            response = user.compute.delete(f"/servers/{server_id}/os-volume_attachments/{volume_id}",
                                           expect=(202, 404, 409),
                                           name="compute DELETE /servers/{id}/os-volume_attachments/{id} (storm)")
        except ApiError:
            if quick:
                return
            raise
        if response.status_code != 409 or time.monotonic() >= deadline:
            return
        gevent.sleep(user.options.status_poll_interval)


def _attached_volumes(user: NovaUser) -> list[tuple[str, str]]:
    """(server id, volume id) of this user's tracked volumes that are attached to a server."""
    found = []
    for tracked in list(user.tracked.values()):
        if tracked.kind == "volume" and tracked.resource_id:
            volume = user.show("volume", tracked.resource_id)
            found += [(a["server_id"], tracked.resource_id) for a in (volume or {}).get("attachments") or []
                      if a.get("server_id")]
    return found


# action name -> (puts it on a member: True accepted / False refused / None server gone, statuses)
RESOURCE_ACTIONS: dict[str, tuple[Callable[[NovaUser, Member, list[Held]], bool | None], tuple[str, ...]]] = {
    "attach_volume": (attach_volume, ATTACHABLE),
    "associate_floating_ip": (associate_floating_ip, ATTACHABLE),
}


# -- race plans: two-request races a random round seldom sets up --------------------------
SHELVED = ("SHELVED", "SHELVED_OFFLOADED")


def race_plan(user: NovaUser, storm: StormState, member: Member, name: str, server: dict,
              peer: OpenStackClient | None, checks) -> bool:
    """Bring the member where `name` is accepted, fire it, and DELETE the member while it is in
    flight: an unshelve needs a shelve that completed first, an attach / association a volume /
    floating IP made first — a random round rarely lines those up before another deletes the server.
    False (nothing done) when the member is busy or in no state the plan starts from."""
    if server.get("OS-EXT-STS:task_state") is not None:
        return False
    if name in RESOURCE_ACTIONS:
        if server["status"] not in _statuses(name):
            return False
        resource_round(user, storm, member, name, peer, checks, planned=True)
        return True
    if server["status"] not in SHELVED + _statuses("shelve"):
        return False
    unshelve_raced_by_delete(user, storm, member, server, peer, checks)
    return True


def unshelve_raced_by_delete(user: NovaUser, storm: StormState, member: Member, server: dict,
                             peer: OpenStackClient | None, checks) -> None:
    """Shelve the member (unless it is shelved) and wait until it is; unshelve it, with either
    credential, and DELETE it while the unshelve is in flight."""
    record = user.client.action
    shelved_here = server["status"] not in SHELVED
    if shelved_here:
        accepted = fire(user, user.client, member, "shelve", server)
        if accepted is None:
            _forget(storm, member)
        elif accepted is False and record is not None:   # refused: the round changed nothing there
            checks.refused(member.id, record.global_request_id)
        if not accepted:
            return
        server = _shelved(user, storm, member)
        if server is None:   # gone, or another round took it elsewhere meanwhile
            return
    client = storm.rng.choice([user.client, peer]) if peer is not None else user.client
    accepted = fire(user, client, member, "unshelve", server)
    if accepted is None:
        _forget(storm, member)
    elif accepted:
        _race_delete(user, storm, member, peer, checks, lambda: _server_busy(user, member), "in-flight")
    elif not shelved_here and record is not None:
        checks.refused(member.id, record.global_request_id)


def _shelved(user: NovaUser, storm: StormState, member: Member) -> dict | None:
    """The member once shelved with no task in progress (polled, bounded by --build-timeout);
    None when it is gone (it leaves the pool) or left for another state meanwhile."""
    try:
        server = user.poll(f"server {member.name} ({member.id})", lambda: _show(user, member.id),
                           lambda seen: seen is None or seen.get("OS-EXT-STS:task_state") is None,
                           user.options.build_timeout)
    except WaitError:   # still busy: another round's action holds it
        return None
    if server is None:
        _forget(storm, member)
        return None
    return server if server["status"] in SHELVED else None


# the actions race plans fire (those --storm-actions allows), the unshelve twice as often: it
# needs a shelve to complete first, and its window (the unshelve's claim) is the narrowest
PLANS = ("unshelve", "unshelve", "attach_volume", "associate_floating_ip")


# -- server-group bursts -------------------------------------------------------------------
# what Nova logs as ERROR when a burst's boots race for hosts: the compute's late policy check,
# the conductor's reschedule, then no valid host for the loser; check_group judges the outcome
GROUP_RACE_LOG = {r"GroupAffinityViolation|instance group policy was violated|NoValidHost|MaxRetriesExceeded":
                  "Nova's answer to a server-group burst racing for hosts (late policy check, no valid host)"}


def server_group_burst(user: NovaUser) -> None:
    """N simultaneous boots into an affinity or anti-affinity group, checked against the policy."""
    opts = user.options
    storm = storm_state(user.environment)
    policy = storm.rng.choice(DEFAULT_GROUP_POLICIES)
    count = burst_size(opts.storm_group_size, policy, _host_count(user))
    checks = invariants(user.environment)
    record = user.client.action
    if record is not None:
        record.expected_log.update(GROUP_RACE_LOG)
    with user.atomic("create_server_group"):
        group = user.compute.post("/os-server-groups", json={"server_group": {
            "name": user.resource_name("group"), "policies": [policy]}}, expect=(200,),
            name="compute POST /os-server-groups").json()["server_group"]
    servers: list[dict] = []
    boots: list[gevent.Greenlet] = []
    try:
        with user.atomic("boot_server_group_burst"):
            boot = user.state.boot_args()
            names = [user.resource_name("server") for _ in range(count)]

            def boot_one(name: str) -> None:
                user.track("server", name)
                body: dict[str, Any] = {"name": name, "imageRef": boot.image_id, "flavorRef": boot.flavor_id,
                                        "networks": boot.networks}
                created = user.compute.post("/servers", json={"server": body, "os:scheduler_hints": {
                    "group": group["id"]}}, expect=(202,)).json()["server"]
                user.track("server", name, created["id"])
                servers.append({"id": created["id"], "name": name})
            boots = [spawn_kept(boot_one, name) for name in names]
            joined(boots, opts.request_timeout * 2)
            members = [_settled(user, server) for server in servers]
            for server, member in zip(servers, members):
                server["status"] = member["status"]     # a loser's ERROR is known before its DELETE
        request_ids = [record.global_request_id, *record.request_ids] if record else []
        for server in servers if record else []:
            checks.touched(server["id"], record.global_request_id)
        checks.check_group(policy, group["id"], members, _host_count(user), request_ids)
    finally:
        # a stop cut the burst short: its boots end before the group goes (a boot after that
        # would be refused for a group that is gone, a failure of our own making)
        gevent.killall(boots, block=True, timeout=5)
        for server in servers:
            try:
                user.delete_server(server)
            except Exception as exc:  # noqa: BLE001 - raised here it would replace the burst's own error
                LOG.warning("%s: could not delete group member %s: %s", user.name, server["id"], exc)
        KINDS["server_group"].delete(user.client.request, group["id"])


def burst_size(wanted: int, policy: str, hosts: int | None) -> int:
    """Boots of one burst: `wanted` (--storm-group-size) when given; else for anti-affinity one more
    than the hosts — at most `hosts` members may be ACTIVE, the race is two landing on one host —
    and for affinity as many; at least 2 (one host still races), 2 when the host count is unknown.

        burst_size(0, "anti-affinity", 1)   # 2
    """
    if wanted:
        return wanted
    if hosts is None:
        return 2
    return max(2, hosts + 1 if policy == "anti-affinity" else hosts)


def _settled(user: NovaUser, server: dict) -> dict:
    """Poll until the server is ACTIVE or ERROR (a burst's loser may rightly be ERROR)."""
    deadline = time.monotonic() + user.options.build_timeout
    while True:
        seen = user.compute.get(f"/servers/{server['id']}", name="compute GET /servers/{id} (storm)").json()["server"]
        if seen["status"] in ("ACTIVE", "ERROR") and seen.get("OS-EXT-STS:task_state") is None:
            return seen
        if time.monotonic() >= deadline:
            raise ApiError(f"group member {server['id']} still {seen['status']} after "
                           f"{user.options.build_timeout:g} s")
        gevent.sleep(user.options.status_poll_interval)


def _host_count(user: NovaUser) -> int | None:
    """Compute hosts up and enabled, from the cloud profile; None when unknown (no admin credentials)."""
    profile = user.state.profile
    return profile.compute_hosts if profile is not None else None


# -- listeners --------------------------------------------------------------------------------
RATIOS = ("--storm-delete-ratio", "--storm-plan-ratio", "--storm-group-ratio", "--storm-double-ratio")


def check_options(opts) -> None:
    """The storm's options, checked by the preflight: ValueError names the bad one."""
    enabled_actions(opts.storm_actions)
    for option in RATIOS:
        value = getattr(opts, option[2:].replace("-", "_"))
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{option} {value:g}: a fraction of rounds, between 0 and 1")


OPTION_CHECKS.append(check_options)


@events.test_stop.add_listener
def _on_test_stop(environment, **_kwargs) -> None:
    storm = run_state(environment).storm
    if storm is None:
        return
    storm.members.clear()
    if storm.peer_user is not None:
        user_id, admin = storm.peer_user
        storm.peer_user = None
        try:
            KINDS["user"].delete(admin.request, user_id)
        except ApiError as exc:
            LOG.error("novastress: could not delete the storm's peer user: %s", exc)
    storm.peer_resolved = False
    storm.peer_target = None


__all__ = ["StormUser", "storm_round", "server_group_burst", "ACTIONS", "RESOURCE_ACTIONS", "enabled_actions",
           "fit_actions", "burst_size", "NEEDS"]
