"""What the storm fires: its actions, the statuses Nova accepts each in, what each needs of the
cloud, and how one is sent (alone, or two at the same moment with two credentials).

    enabled_actions("soft_reboot,shelve")      # ["soft_reboot", "shelve"]; ValueError names an unknown one
    accepted = fire(round, client, "shelve", server)   # True, False (409) or None (gone)
"""
from __future__ import annotations

from typing import Any, Callable

from ..client import ApiError, OpenStackClient
from ..cloudprofile import RESIZE, CloudProfile, Needs, Skip
from ..errors import error_message
from ..greenlets import joined, spawn_kept
from ..user import NovaUser
from .pool import Round, conflict


def _body(key: str, value: Any = None) -> Callable[[NovaUser, dict], dict]:
    return lambda user, server: {key: value}


def _snapshot_body(user: NovaUser, server: dict) -> dict:
    """createImage with a run-prefixed name, tracked before the POST: an unanswered one is found by name."""
    name = user.resource_name("image")
    user.track("image", name)
    return {"createImage": {"name": name}}


def _resize_target(user: NovaUser, server: dict) -> str:
    """The boot flavor, or the next bigger one when the server already has the boot flavor."""
    from ..actions.lifecycle import _other_flavor
    boot = user.state.boot_args().flavor_id
    current = str((server.get("flavor") or {}).get("id", boot))
    return _other_flavor(user, None) if current == boot else boot


# action name -> (request body for a server, statuses in which Nova accepts it)
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
# Nova attaches a volume in vm_states active, paused, stopped, suspended, resized, shelved and
# shelved_offloaded; Neutron binds a floating IP to the port whatever the server is doing
ATTACHABLE = ("ACTIVE", "PAUSED", "SHUTOFF", "SUSPENDED", "VERIFY_RESIZE", "SHELVED", "SHELVED_OFFLOADED")
# a volume or floating IP put on the member (resources.py) -> the statuses it is accepted in
RESOURCE_ACTIONS: dict[str, tuple[str, ...]] = {"attach_volume": ATTACHABLE, "associate_floating_ip": ATTACHABLE}

# what a storm action needs of the cloud besides compute; the others need nothing more
NEEDS: dict[str, Needs] = {
    "resize": RESIZE, "confirm_resize": RESIZE, "revert_resize": RESIZE,
    "snapshot": Needs(services=("image",)),          # the round deletes the snapshot's image
    "attach_volume": Needs(services=("volume",)),
    "associate_floating_ip": Needs(services=("network",), floating_ip=True),
}

# the way back from a state an earlier action left the server in: half the time a round takes it,
# as servers in use come back (and the way back — unshelve above all — races a DELETE too)
WAY_BACK = {"SHELVED": ("unshelve",), "SHELVED_OFFLOADED": ("unshelve",), "SHUTOFF": ("start",),
            "PAUSED": ("unpause",), "SUSPENDED": ("resume",), "VERIFY_RESIZE": ("confirm_resize", "revert_resize")}


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


# where an accepted action leaves the member until another action takes it on
LEAVES = {"stop": "SHUTOFF", "pause": "PAUSED", "suspend": "SUSPENDED", "shelve": "SHELVED_OFFLOADED",
          "resize": "VERIFY_RESIZE"}


def dead_ends(names: list[str]) -> list[str]:
    """The enabled actions that leave a member where none of `names` takes it on from (a resize
    without confirm_resize or revert_resize): one line each, naming what to add."""
    lines = []
    for name in names:
        status = LEAVES.get(name)
        if status is None:
            continue
        out = [*WAY_BACK[status], *(["hard_reboot"] if status in statuses("hard_reboot") else [])]
        if not set(out) & set(names):
            lines.append(f"--storm-actions: {name} leaves a server in {status} and none of the enabled actions "
                         f"takes it on (add {' or '.join(out)}): until a racing DELETE replaces it "
                         "(--storm-delete-ratio), its rounds are refused")
    return lines


def statuses(name: str) -> tuple[str, ...]:
    """The server statuses in which the cloud accepts this storm action."""
    return ACTIONS[name][1] if name in ACTIONS else RESOURCE_ACTIONS[name]


def choose(rng, names: list[str], status: str) -> str:
    """Often the way back from where the server is; else mostly an action Nova accepts in this
    status; sometimes any, to provoke refusals."""
    back = [n for n in WAY_BACK.get(status, ()) if n in names]
    if back and rng.random() < 0.5:
        return rng.choice(back)
    fitting = [n for n in names if status in statuses(n)]
    return rng.choice(fitting if fitting and rng.random() < 0.7 else names)


# Nova's 400 to an action that lost a race: a resize to the flavor a racing revert just restored,
# a confirm or revert of a resize that a racing confirm, revert or failure already ended
RACED_400 = {"resize": "must change flavor", "confirmResize": "has not been resized",
             "revertResize": "has not been resized"}


def fire(round: Round, client: OpenStackClient, name: str, server: dict) -> bool | None:
    """POST the action: True when accepted, False when refused (409), None when the server is gone."""
    user = round.user
    build, _ = ACTIONS[name]
    body = build(user, server)
    key = next(iter(body))
    expect = (200, 202, 204, 404, 409) + ((400,) if key in RACED_400 else ())
    response = client.compute.post(f"/servers/{round.member.id}/action", json=body, expect=expect,
                                   name=f"compute POST /servers/{{id}}/action {key}")
    if key == "createImage":
        _snapshot_accepted(user, client, body[key]["name"], response)
    if response.status_code == 404:
        return None
    if response.status_code == 400:
        message = error_message(response)
        if RACED_400[key] not in message:
            raise ApiError(f"compute POST /servers/{{id}}/action {key} -> 400 {message}", 400)
    if response.status_code in (400, 409):
        conflict(user, name, response)
        return False
    if key == "resize":
        round.checks.resized(round.member.id)
    return True


def fire_together(round: Round, shots: list[tuple[OpenStackClient, str]], server: dict) -> bool | None:
    """Two state changes of one server sent at the same moment (two clients racing): True when
    one was accepted, None when the server is gone; the first error (a 5xx) is raised after both."""
    greenlets = [spawn_kept(fire, round, client, name, server) for client, name in shots]
    results = joined(greenlets, round.options.request_timeout * 2)
    if any(result is True for result in results):
        return True
    return None if None in results else False


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


def finish_snapshots(user: NovaUser) -> None:
    """Delete the images this round's snapshots made, each once its snapshot is done (active); a
    racing server DELETE may have deleted a partial one already (404). The client that asked for
    the snapshot deletes it: Glance lets the image's owner, or an admin, delete it."""
    # a storm user tracks no image but its round's snapshots
    for tracked in [t for t in user.tracked.values() if t.kind == "image"]:
        if tracked.resource_id:   # else the user's cleanup finds it by name
            user.delete_image(tracked.resource_id, tracked.name, tracked.owner)
