"""The storm's pool and the moves every kind of round makes.

    storm = storm_state(user.environment)        # the process's pool (members, peer credential)
    refill(user, storm)                           # boot a member (or boot one and race its build)
    round = Round(user, storm, member, peer_client(user), invariants(user.environment))
    if round.race_delete(round.busy):             # DELETE it while its action is in progress
        ...                                       # it left the pool; the invariants follow it
"""
from __future__ import annotations

import logging
import random
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import gevent
from gevent.lock import Semaphore

from ..client import ApiError, OpenStackClient, generalize
from ..credentials import CloudTarget
from ..errors import error_message
from ..invariants import invariants
from ..state import run_state
from ..user import NovaUser

LOG = logging.getLogger("novastress")
IN_FLIGHT_POLL = 0.1   # seconds between two looks at an action in progress before a racing DELETE


@dataclass
class Member:
    """A pool server: who booted it (and tracks it) and its name."""

    id: str
    name: str
    owner: NovaUser


@dataclass
class StormState:
    """The pool, the peer credential and what the storm looked up once, of one process."""

    members: dict[str, Member] = field(default_factory=dict)
    booting: int = 0
    peer_target: Any = None
    peer_user: tuple[str, Any] | None = None      # (user id, admin client) to delete at the end
    peer_lock: Semaphore = field(default_factory=Semaphore)
    peer_resolved: bool = False
    peers: dict[str, OpenStackClient | None] = field(default_factory=dict)   # user name -> its peer client
    external_network: str | None = None           # floating IPs come from it (None: the cloud has none)
    external_network_looked: bool = False
    rng: random.Random = field(default_factory=random.Random)


def storm_state(environment) -> StormState:
    state = run_state(environment)
    if state.storm is None:
        state.storm = StormState()
    return state.storm


@dataclass
class Round:
    """One round at one pool member: the user firing, the peer credential (None: the run's own
    only), the process's pool, and the invariant checks that follow the member once deleted."""

    user: NovaUser
    storm: StormState
    member: Member
    peer: OpenStackClient | None
    checks: Any                 # invariants.Invariants

    @property
    def options(self):
        return self.user.options

    def either_client(self) -> OpenStackClient:
        """The run's own credential or the peer's, at random."""
        return self.storm.rng.choice([self.user.client, self.peer]) if self.peer is not None else self.user.client

    def show(self) -> dict | None:
        return show_server(self.user, self.member.id)

    def busy(self) -> bool:
        """Whether the member still has an action in progress (a task_state); gone counts as not."""
        server = self.show()
        return server is not None and server.get("OS-EXT-STS:task_state") is not None

    def forget(self) -> None:
        """The member is gone: out of the pool, and its owner stops tracking it."""
        if self.storm.members.pop(self.member.id, None) is not None:
            self.member.owner.untrack(self.member.name)

    def delete(self, client: OpenStackClient) -> bool:
        """DELETE the member; once accepted it leaves the pool and the invariants follow it.
        True when this DELETE was accepted (204)."""
        response = client.compute.delete(f"/servers/{self.member.id}", expect=(204, 404, 409),
                                         name="compute DELETE /servers/{id} (storm)")
        if response.status_code == 409:
            conflict(self.user, "delete", response)
            return False
        self.storm.members.pop(self.member.id, None)
        if response.status_code == 204:
            self.checks.watch_delete(self.member.id, client)
        # the owner's cleanup would delete it again; the invariants wait for the 404 instead
        self.member.owner.untrack(self.member.name)
        return response.status_code == 204

    def race_delete(self, in_flight: Callable[[], bool] | None = None, timing: str | None = None) -> bool:
        """DELETE the member --storm-delete-delay-* after its action, with either credential: at a
        uniformly random moment, or (--storm-delete-timing, or `timing`) while `in_flight()` still
        sees the action in progress — the window a real race needs is often shorter than the delay."""
        race_wait(self.user, self.storm, in_flight, timing)
        return self.delete(self.either_client())


def race_wait(user: NovaUser, storm: StormState, in_flight: Callable[[], bool] | None,
              timing: str | None = None) -> None:
    """The pause before a racing DELETE (see Round.race_delete)."""
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


def show_server(user: NovaUser, server_id: str) -> dict | None:
    """The server as the storm sees it now; None once it is gone (404)."""
    response = user.compute.get(f"/servers/{server_id}", expect=(200, 404), name="compute GET /servers/{id} (storm)")
    return None if response.status_code == 404 else response.json()["server"]


def touch(user: NovaUser, server_id: str) -> None:
    """The user's current action touched the server: its ids go into any violation about it."""
    record = user.client.action
    if record is None:
        return
    if server_id not in record.resource_ids:
        record.resource_ids.append(server_id)
        user.client.index.note(record, server_id)
    invariants(user.environment).touched(server_id, record.global_request_id)


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


def unlock(server_id: str, client: OpenStackClient, other: OpenStackClient | None) -> None:
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


# -- filling the pool -------------------------------------------------------------------------
def refill(user: NovaUser, storm: StormState) -> None:
    """Boot a pool member; a fraction of the boots is raced by a DELETE instead (delete during build)."""
    if storm.rng.random() < user.options.storm_delete_ratio:
        boot_raced_by_delete(user, storm)
        return
    storm.booting += 1
    try:
        server = user.boot_server()
    finally:
        storm.booting -= 1
    name = server.get("name") or next(t.name for t in user.tracked.values() if t.resource_id == server["id"])
    storm.members[server["id"]] = Member(server["id"], name, user)
    touch(user, server["id"])


def boot_raced_by_delete(user: NovaUser, storm: StormState) -> None:
    """POST a server, then DELETE it 0-2 s after the 202, while it is likely still building."""
    name = user.resource_name("server")
    with user.atomic("boot_raced_by_delete"):
        user.track("server", name)
        boot = user.state.boot_args()
        body = {"name": name, "imageRef": boot.image_id, "flavorRef": boot.flavor_id, "networks": boot.networks}
        created = user.compute.post("/servers", json={"server": body}, expect=(202,)).json()["server"]
        user.track("server", name, created["id"])
        touch(user, created["id"])
        booted = Round(user, storm, Member(created["id"], name, user), None, invariants(user.environment))
        race_wait(user, storm, booted.busy)
        booted.delete(user.client)


# -- the peer credential ------------------------------------------------------------------
def peer_client(user: NovaUser) -> OpenStackClient | None:
    """The user's client for the second credential (None: --storm-peer none or unavailable)."""
    peers = storm_state(user.environment).peers
    if user.name not in peers:
        target = _peer_target(user)
        peers[user.name] = OpenStackClient(user.state, target, f"{user.name}-peer") if target else None
    return peers[user.name]


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
