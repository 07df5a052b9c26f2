"""One storm round, its race plans, the storm's users, and its options.

    storm_round(user)                           # refill the pool, or a group burst, or an action
    race_plan(round, "unshelve", server)        # shelve, wait, unshelve, DELETE in flight

Race plans are two-request races a random round seldom lines up: the member is brought where the
action is accepted, the action fired, and the member DELETEd while it is in flight.
"""
from __future__ import annotations

import logging

import gevent

from ..client import ApiError
from ..invariants import invariants
from ..kinds import KINDS
from ..state import run_state
from ..user import NovaUser
from ..waiter import WaitError
from .bursts import server_group_burst
from .catalog import (ACTIONS, RESOURCE_ACTIONS, choose, dead_ends, enabled_actions, finish_snapshots, fire,
                      fire_together, statuses)
from .pool import Round, peer_client, refill, storm_state, touch, unlock
from .resources import attached_volumes, detach, resource_round

LOG = logging.getLogger("novastress")
RATIOS = ("--storm-delete-ratio", "--storm-plan-ratio", "--storm-group-ratio", "--storm-double-ratio")
SHELVED = ("SHELVED", "SHELVED_OFFLOADED")
# the actions race plans fire (those --storm-actions allows), the unshelve twice as often: it
# needs a shelve to complete first, and its window (the unshelve's claim) is the narrowest
PLANS = ("unshelve", "unshelve", "attach_volume", "associate_floating_ip")


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
    record = user.client.action
    peer = peer_client(user)
    round = Round(user, storm, member, peer, invariants(user.environment))
    if peer is not None:
        peer.action = record
    try:
        server = round.show()
        if server is None:
            round.forget()
            return
        # only rounds that found the server touched it: a violation lists the actions that raced on it
        touch(user, member.id)
        if server["status"] == "ERROR":
            round.delete(user.client)
            return
        names = enabled_actions(opts.storm_actions)
        plans = [plan for plan in PLANS if plan in names]
        if plans and rng.random() < getattr(opts, "storm_plan_ratio", 0.0) and \
                race_plan(round, rng.choice(plans), server):
            return
        name = choose(rng, names, server["status"])
        if name in RESOURCE_ACTIONS:   # a volume or floating IP put on the member, then taken back
            resource_round(round, name)
            return
        client = round.either_client()
        if name != "lock" and rng.random() < getattr(opts, "storm_double_ratio", 0.0):
            other = (user.client if client is peer else peer) if peer is not None else client
            second = choose(rng, [n for n in names if n != "lock" and n in ACTIONS] or [name], server["status"])
            accepted = fire_together(round, [(client, name), (other, second)], server)
        else:
            accepted = fire(round, client, name, server)
        if accepted is None:
            round.forget()
            return
        if accepted is False:   # refused: the round changed nothing there
            if record is not None:
                round.checks.refused(member.id, record.global_request_id)
            # the member is busy, or where nothing enabled is accepted: no spin of refusals at the
            # API's pace (it filled the request index and buried the calls that raced)
            gevent.sleep(rng.uniform(0, opts.status_poll_interval))
        try:
            if accepted and rng.random() < opts.storm_delete_ratio:
                round.race_delete(round.busy)
            elif accepted and name == "lock":
                gevent.sleep(rng.uniform(0, 0.5))  # others meet the lock meanwhile
        finally:
            if accepted and name == "lock":
                unlock(member.id, client, peer if client is user.client else user.client)
        finish_snapshots(user)
    finally:
        if peer is not None:
            peer.action = None


def race_plan(round: Round, name: str, server: dict) -> bool:
    """Bring the member where `name` is accepted, fire it, and DELETE the member while it is in
    flight: an unshelve needs a shelve that completed first, an attach / association a volume /
    floating IP made first — a random round rarely lines those up before another deletes the server.
    False (nothing done) when the member is busy or in no state the plan starts from."""
    if server.get("OS-EXT-STS:task_state") is not None:
        return False
    if name in RESOURCE_ACTIONS:
        if server["status"] not in statuses(name):
            return False
        resource_round(round, name, planned=True)
        return True
    if server["status"] not in SHELVED + statuses("shelve"):
        return False
    unshelve_raced_by_delete(round, server)
    return True


def unshelve_raced_by_delete(round: Round, server: dict) -> None:
    """Shelve the member (unless it is shelved) and wait until it is; unshelve it, with either
    credential, and DELETE it while the unshelve is in flight."""
    user = round.user
    record = user.client.action
    shelved_here = server["status"] not in SHELVED
    if shelved_here:
        accepted = fire(round, user.client, "shelve", server)
        if accepted is None:
            round.forget()
        elif accepted is False and record is not None:   # refused: the round changed nothing there
            round.checks.refused(round.member.id, record.global_request_id)
        if not accepted:
            return
        server = _shelved(round)
        if server is None:   # gone, or another round took it elsewhere meanwhile
            return
    accepted = fire(round, round.either_client(), "unshelve", server)
    if accepted is None:
        round.forget()
    elif accepted:
        round.race_delete(round.busy, "in-flight")
    elif not shelved_here and record is not None:
        round.checks.refused(round.member.id, record.global_request_id)


def _shelved(round: Round) -> dict | None:
    """The member once shelved with no task in progress (polled, bounded by --build-timeout);
    None when it is gone (it leaves the pool) or left for another state meanwhile."""
    member = round.member
    try:
        server = round.user.poll(f"server {member.name} ({member.id})", round.show,
                                 lambda seen: seen is None or seen.get("OS-EXT-STS:task_state") is None,
                                 round.options.build_timeout)
    except WaitError:   # still busy: another round's action holds it
        return None
    if server is None:
        round.forget()
        return None
    return server if server["status"] in SHELVED else None


def check_options(opts) -> None:
    """The storm's options, checked by the preflight: ValueError names the bad one."""
    for line in dead_ends(enabled_actions(opts.storm_actions)):
        LOG.warning(line)
    for option in RATIOS:
        value = getattr(opts, option[2:].replace("-", "_"))
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{option} {value:g}: a fraction of rounds, between 0 and 1")


class StormUser(NovaUser):
    """A user of the storm: shares its process's pool; its tasks come from the locustfile."""

    abstract = True
    invariants = True   # turns the invariant checks on for the run
    option_checks = (check_options,)

    def on_stop(self) -> None:
        # another user may hold a lock on a server this one booted (its lock window): unlock
        # first, with the admin peer when there is one, so the cleanup's DELETE is not refused
        if self.client is not None:
            storm = storm_state(self.environment)
            peer = storm.peers.get(self.name)
            for tracked in list(self.tracked.values()):
                member = storm.members.get(tracked.resource_id or "")
                if tracked.kind == "server" and member is not None:
                    try:
                        unlock(member.id, peer or self.client, self.client if peer else None)
                    except ApiError as exc:
                        LOG.warning("%s could not unlock %s: %s", self.name, member.id, exc)
        super().on_stop()

    def unlock_server(self, server_id: str) -> None:
        """The peer (an admin) may hold the lock: unlock with it first, then as the owner."""
        peer = storm_state(self.environment).peers.get(self.name)
        unlock(server_id, peer or self.client, self.client if peer else None)

    @classmethod
    def run_test_stop(cls, environment) -> None:
        """The pool is emptied and the peer user the storm made is deleted."""
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
        storm.peers.clear()                  # their credential may be the peer user just deleted

    def cleanup(self) -> None:
        """A failed round deletes this user's pool servers: they leave the pool, and their deletes
        (which may race another user's action on them) are followed by the invariants too."""
        storm = storm_state(self.environment)
        pool = [tracked.resource_id for tracked in self.tracked.values()
                if tracked.kind == "server" and tracked.resource_id in storm.members]
        for server_id in pool:   # no other round picks them meanwhile; the failed action owns the deletes
            storm.members.pop(server_id, None)
            touch(self, server_id)
        if self.client is not None and not self.options.leave_dirty_stack:
            # a volume this user attached to another user's live server: off it, or it cannot be deleted
            try:
                for server_id, volume_id in attached_volumes(self):
                    detach(self, server_id, volume_id, quick=True)
            except ApiError as exc:
                LOG.warning("%s could not detach its volumes: %s", self.name, exc)
        super().cleanup()
        checks = invariants(self.environment)
        for server_id in pool if checks.active else []:
            checks.watch_delete(server_id, self.client)
