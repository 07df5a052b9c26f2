"""Volumes and floating IPs put on pool members: a round attaches or binds one without waiting,
maybe races it with the member's DELETE, and always takes it back (detached or unbound, then
deleted), also when the server is gone meanwhile.

    resource_round(round, "attach_volume")                 # random: raced by --storm-delete-ratio
    resource_round(round, "attach_volume", planned=True)   # a race plan: DELETE while in flight
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

import gevent

from ..client import ApiError
from ..user import NovaUser
from .pool import Round, conflict, storm_state

LOG = logging.getLogger("novastress")
REASSOCIATIONS = 100     # at most this many re-sent associations while a racing delete runs
SETTLING = ("reserved", "attaching")


@dataclass
class Held:
    """A volume or floating IP a round put on a pool member; the same round takes it back."""

    kind: str                   # "volume" or "floating_ip"
    resource: dict              # the volume / floating IP as created
    port_id: str | None = None  # floating IP: the member's port it was bound to


def resource_round(round: Round, name: str, planned: bool = False) -> None:
    """Put a volume or floating IP on the member without waiting, maybe race it with a DELETE
    (`planned`: always, while the attach / association is in flight), then take it back
    (detached / unbound, deleted), also when the server is gone meanwhile."""
    user, member, opts = round.user, round.member, round.options
    held: list[Held] = []
    try:
        accepted = PUTS[name](round, held)
        if accepted is None:
            round.forget()
        elif accepted and (planned or round.storm.rng.random() < opts.storm_delete_ratio):
            if round.race_delete(lambda: holding(user, held), "in-flight" if planned else None):
                for item in held:
                    if item.kind == "floating_ip":
                        _keep_associating(user, item)
        for item in held:
            _settle(user, item)
        if member.id not in round.storm.members:
            # the delete (this round's or another's) is followed by the invariants: they must see
            # what it left before the volume / floating IP is released
            round.checks.wait_checked(member.id, opts.invariant_delete_timeout + opts.invariant_allocation_timeout)
        for item in held:
            _release(round, item, gone=member.id not in round.storm.members)
    except Exception:
        # the action's cleanup deletes what this user tracks: a volume must be off the server first
        for item in held:
            if item.kind == "volume":
                detach(user, member.id, item.resource["id"], quick=True)
        raise


def attach_volume(round: Round, held: list[Held]) -> bool | None:
    """A new volume attached to the member through Nova, not waited for: True when accepted,
    False when refused (409), None when the server is gone."""
    user = round.user
    volume = user.create_volume()
    held.append(Held("volume", volume))
    response = user.compute.post(f"/servers/{round.member.id}/os-volume_attachments", expect=(200, 404, 409),
                                 json={"volumeAttachment": {"volumeId": volume["id"]}},
                                 name="compute POST /servers/{id}/os-volume_attachments (storm)")
    accepted = _answered(user, "attach_volume", response, gone=None)
    if accepted:
        round.checks.attached(round.member.id, volume["id"])
    return accepted


def associate_floating_ip(round: Round, held: list[Held]) -> bool | None:
    """A new floating IP bound to the member's port, not waited for: True when accepted, False
    when refused (409), the port is gone, or the cloud has no external network / the server no port."""
    user = round.user
    network = _external_network(user)
    if network is None:
        return False
    ports = user.client.network.get("/v2.0/ports", params={"device_id": round.member.id},
                                    name="network GET /v2.0/ports?device_id (storm)").json()["ports"]
    if not ports:
        return False
    with user.atomic("create_floating_ip"):
        fip = user.create_floating_ip(network)
    item = Held("floating_ip", fip, ports[0]["id"])
    held.append(item)
    # 404: the port went with its server meanwhile
    accepted = _answered(user, "associate_floating_ip", _associate(user, item), gone=False)
    if accepted:
        round.checks.associated(round.member.id, fip["id"])
    return accepted


def _answered(user: NovaUser, name: str, response, gone: bool | None) -> bool | None:
    """True when the cloud accepted the put, False when it refused it (409: a CONFLICT row),
    `gone` when what it was put on is gone (404)."""
    if response.status_code == 404:
        return gone
    if response.status_code == 409:
        conflict(user, name, response)
        return False
    return True


# action name -> puts its resource on the member: True accepted / False refused / None server gone
PUTS: dict[str, Callable[[Round, list[Held]], bool | None]] = {
    "attach_volume": attach_volume,
    "associate_floating_ip": associate_floating_ip,
}


def holding(user: NovaUser, held: list[Held]) -> bool:
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
    storm = storm_state(user.environment)
    if not storm.external_network_looked:
        storm.external_network_looked = True
        try:
            storm.external_network = user.external_network()
        except ApiError as exc:
            LOG.warning("novastress: the storm associates no floating IPs: %s", exc)
    return storm.external_network


def _settle(user: NovaUser, item: Held) -> None:
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


def _release(round: Round, item: Held, gone: bool) -> None:
    """Detach / unbind (unless the server is gone), then delete and wait until it is gone."""
    user = round.user
    if item.kind == "floating_ip":
        if not gone:
            user.disassociate_floating_ip(item.resource, wait=False)
        user.release_floating_ip(item.resource)
        return
    tracked = user.tracked.get(item.resource["name"])
    if tracked is None:
        return
    if not gone:
        detach(user, round.member.id, item.resource["id"])
    # waits out a detach in progress; a volume left attached to a gone server is reset as admin
    user.delete_tracked(tracked)


def detach(user: NovaUser, server_id: str, volume_id: str, quick: bool = False) -> None:
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


def attached_volumes(user: NovaUser) -> list[tuple[str, str]]:
    """(server id, volume id) of this user's tracked volumes that are attached to a server."""
    found = []
    for tracked in list(user.tracked.values()):
        if tracked.kind == "volume" and tracked.resource_id:
            volume = user.show("volume", tracked.resource_id)
            found += [(a["server_id"], tracked.resource_id) for a in (volume or {}).get("attachments") or []
                      if a.get("server_id")]
    return found
