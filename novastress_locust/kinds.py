"""Every kind of resource a run makes, in one table: the service it lives in, how one is found
by its exact name, looked up, deleted, and in which order the kinds go at cleanup.

    volume = KINDS["volume"]
    volume.named(call, "ns-1a2b3c-ab12-3-volume")   # ids of what carries exactly that name
    volume.show(call, volume_id)                      # its record; None once it is gone
    volume.delete(call, volume_id)                    # DELETE; already gone is fine
    [kind.name for kind in in_cleanup_order()]        # servers first, isolated users last
    volume_held_for(call, volume_record)              # the servers an attachment or reservation names
    reset_volume(call, volume_id)                     # free one held for a server that is gone (admin)

`call(service, method, path, *, params=None, json=None, expect=(200,), name=None, microversion=None)`
is whichever
client asks: the load's `OpenStackClient.request` (its calls are Locust requests, pinned on the
action) or cloud.py's `RetryingClient.call` (the sweep's and `novastress-cleanup`'s: retried, bounded by a deadline).
Both return the response when its status is in `expect` and raise otherwise. Waiting until a
resource is gone stays with the caller: a user polls between its actions, the cleanup within
its deadline.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

Call = Callable[..., Any]


def _exact(name: str) -> dict[str, str]:
    return {"name": name}


@dataclass(frozen=True)
class Kind:
    name: str                   # what a user tracks: "server", "floating_ip", ...
    service: str                # its catalog type
    collection: str             # the list; with /{id}, one of them
    key: str                    # one record's key in a show answer ("": the answer is the record)
    list_key: str               # the list's key in a list answer
    order: int                  # cleanup deletes lower orders first
    name_field: str = "name"    # floating IPs: "description" (Neutron gives them no name)
    id_field: str = "id"        # keypairs: "name" (a keypair's name is its id)
    gone: tuple[str, ...] = ()  # statuses (lower case) that are as good as gone
    by_name: Callable[[str], dict[str, str]] = field(default=_exact)   # the list's exact-name filter

    def path(self, resource_id: str) -> str:
        return f"{self.collection}/{resource_id}"

    def stat_name(self, method: str) -> str:
        """The request's name in Locust's statistics (ids and keypair names alike: one row)."""
        return f"{self.service} {method} {self.collection}/{{{self.id_field}}}"

    def show(self, call: Call, resource_id: str) -> dict | None:
        """The resource's record, None when the cloud no longer has it (404 or a gone status)."""
        response = call(self.service, "GET", self.path(resource_id), expect=(200, 404),
                        name=self.stat_name("GET"))
        if response.status_code == 404:
            return None
        record = response.json()
        record = (record.get(self.key) or {}) if self.key else record
        return None if str(record.get("status", "")).lower() in self.gone else record

    def named(self, call: Call, name: str) -> list[str]:
        """Ids of the resources carrying exactly `name` (a create whose answer was lost)."""
        found = call(self.service, "GET", self.collection, params=self.by_name(name)).json()[self.list_key]
        # Nova wraps each keypair of its list: [{"keypair": {...}}]
        records = [item[self.key] if isinstance(item.get(self.key), dict) else item for item in found]
        return [record[self.id_field] for record in records if record.get(self.name_field) == name]

    def delete(self, call: Call, resource_id: str, params: dict | None = None, **extra: Any):
        """DELETE it; 404 (gone already) is fine."""
        return call(self.service, "DELETE", self.path(resource_id), params=params,
                    expect=(202, 204, 404), name=self.stat_name("DELETE"), **extra)


KINDS: dict[str, Kind] = {kind.name: kind for kind in (
    # servers first: deleting them detaches volumes and frees ports and security groups
    Kind("server", "compute", "/servers", "server", "servers", 0, gone=("deleted", "soft_deleted"),
         by_name=lambda name: {"name": f"^{re.escape(name)}$"}),       # Nova filters by regex
    Kind("server_group", "compute", "/os-server-groups", "server_group", "server_groups", 1,
         by_name=lambda name: {}),                     # no name filter (2.75+ refuses unknown ones)
    Kind("image", "image", "/v2/images", "", "images", 1, gone=("deleted", "pending_delete")),
    Kind("floating_ip", "network", "/v2.0/floatingips", "floatingip", "floatingips", 1,
         name_field="description", by_name=lambda name: {"description": name}),
    Kind("volume_snapshot", "volume", "/snapshots", "snapshot", "snapshots", 2,
         gone=("deleted",)),
    Kind("volume", "volume", "/volumes", "volume", "volumes", 3, gone=("deleted",)),
    Kind("keypair", "compute", "/os-keypairs", "keypair", "keypairs", 4, id_field="name",
         by_name=lambda name: {}),                     # no name filter: the whole list
    Kind("security_group", "network", "/v2.0/security-groups", "security_group",
         "security_groups", 4),
    Kind("project", "identity", "/v3/projects", "project", "projects", 5),
    Kind("user", "identity", "/v3/users", "user", "users", 6),
)}


def in_cleanup_order() -> list[Kind]:
    return sorted(KINDS.values(), key=lambda kind: kind.order)


def volume_held_for(call: Call, volume: dict, params: dict | None = None) -> list[str]:
    """Ids of the servers a volume is attached or reserved for. Attached, its record names them;
    reserved, attaching or detaching, Cinder's attachments API (3.27) does (an attach that raced
    the server's delete leaves such a reservation); a cloud without that API names none."""
    held = [attachment.get("server_id") for attachment in volume.get("attachments") or []]
    if not held and volume.get("status") in ("reserved", "attaching", "detaching"):
        response = call("volume", "GET", "/attachments", params={"volume_id": volume["id"], **(params or {})},
                        expect=(200, 404), microversion="3.27")
        listed = response.json().get("attachments") if response.status_code == 200 else None
        held = [attachment.get("instance") for attachment in listed or []]
    return [server_id for server_id in held if server_id]


def reset_volume(call: Call, volume_id: str):
    """Free a volume Cinder still holds for a server that is gone (a lost detach, or an attach
    that raced the delete): available and detached. Only an admin may; Nova will not."""
    return call("volume", "POST", f"/volumes/{volume_id}/action", expect=(202,),
                json={"os-reset_status": {"status": "available", "attach_status": "detached"}})
