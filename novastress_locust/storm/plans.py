"""Race plans: two-request races a random round seldom lines up. The member is brought where the
action is accepted, the action fired, and the member DELETEd while it is in flight.

    race_plan(round, "unshelve", server)        # shelve, wait, unshelve, DELETE in flight
    race_plan(round, "attach_volume", server)   # a new volume attached, DELETE in flight
"""
from __future__ import annotations

from ..waiter import WaitError
from .catalog import RESOURCE_ACTIONS, fire, statuses
from .pool import Round
from .resources import resource_round

SHELVED = ("SHELVED", "SHELVED_OFFLOADED")
# the actions race plans fire (those --storm-actions allows), the unshelve twice as often: it
# needs a shelve to complete first, and its window (the unshelve's claim) is the narrowest
PLANS = ("unshelve", "unshelve", "attach_volume", "associate_floating_ip")


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
