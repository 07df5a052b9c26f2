"""Server-group bursts: N simultaneous boots into an affinity or anti-affinity group, checked
against the policy and (with admin credentials) the host count.

    burst_size(0, "anti-affinity", 1)   # 2: one more than the hosts, two must race for one
    server_group_burst(user)            # one burst, then its servers and group are deleted
"""
from __future__ import annotations

import logging
from typing import Any

import gevent

from ..greenlets import joined, spawn_kept
from ..invariants import invariants
from ..kinds import KINDS
from ..user import NovaUser
from .pool import storm_state

LOG = logging.getLogger("novastress")
POLICIES = ("affinity", "anti-affinity")
# what Nova logs as ERROR when a burst's boots race for hosts: the compute's late policy check,
# the conductor's reschedule, then no valid host for the loser; check_group judges the outcome
GROUP_RACE_LOG = {r"GroupAffinityViolation|instance group policy was violated|NoValidHost|MaxRetriesExceeded":
                  "Nova's answer to a server-group burst racing for hosts (late policy check, no valid host)"}


def server_group_burst(user: NovaUser) -> None:
    """N simultaneous boots into an affinity or anti-affinity group, checked against the policy."""
    opts = user.options
    policy = opts.storm_group_policy
    if policy not in POLICIES:
        policy = storm_state(user.environment).rng.choice(POLICIES)
    count = burst_size(opts.storm_group_size, policy, host_count(user))
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
        checks.check_group(policy, group["id"], members, host_count(user), request_ids)
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
    return user.poll(f"group member {server['id']}", lambda: user.compute.get(
        f"/servers/{server['id']}", name="compute GET /servers/{id} (storm)").json()["server"],
        lambda seen: seen["status"] in ("ACTIVE", "ERROR") and seen.get("OS-EXT-STS:task_state") is None,
        user.options.build_timeout)


def host_count(user: NovaUser) -> int | None:
    """Compute hosts up and enabled, from the cloud profile; None when unknown (no admin credentials)."""
    profile = user.state.profile
    return profile.compute_hosts if profile is not None else None
