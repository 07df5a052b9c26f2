"""Lifecycle "bounce" actions, as operators know them from Rally's NovaServers.boot_and_bounce_server.

Each action works on the user's own server (booted at its first run, kept between runs,
deleted at stop or after a failure; `new_server: true` boots and deletes one per run):

    soft_reboot  hard_reboot  stop_start  pause_unpause  suspend_resume  lock_unlock
    shelve_unshelve  resize_confirm  resize_revert  rebuild

`boot_and_bounce` boots a server, applies a list of them (`[{"hard_reboot": 2}, "stop_start"]`)
and deletes it.
"""
from __future__ import annotations

from typing import Any, Callable

from ..cloudprofile import RESIZE, CloudProfile
from ..user import ApiError, NovaUser
from . import Needs, Skip, stress_action
from .servers import kept


def _other_flavor(user: NovaUser, wanted: str | None) -> str:
    """The flavor to resize to: `wanted`, else the smallest one bigger than the boot flavor."""
    state = user.state
    cached = getattr(state, "resize_flavor", None)
    if cached and not wanted:
        return cached
    flavors = user.compute.get("/flavors/detail").json()["flavors"]
    if wanted:
        found = [f for f in flavors if wanted in (f["id"], f.get("name"))]
        if not found:
            raise ApiError(f"kwarg flavor {wanted!r} matches no flavor")
        return found[0]["id"]
    current = next((f for f in flavors if f["id"] == state.boot_args().flavor_id), None)
    size = (lambda f: (f.get("vcpus", 0), f.get("ram", 0), f.get("disk", 0)))
    bigger = sorted((f for f in flavors if current is None or
                     (f["id"] != current["id"] and size(f) >= size(current) and f.get("disk", 0) >= current.get("disk", 0))),
                    key=size)
    if not bigger:
        raise ApiError("no flavor to resize to: give one with the kwarg flavor")
    state.resize_flavor = bigger[0]["id"]
    return state.resize_flavor


def _resize(user: NovaUser, server: dict, flavor: str | None, finish: str) -> dict:
    # a kept server already resized (and confirmed) goes back to the boot flavor: both have equal disks
    flavors: dict[str, str] = user.kept.setdefault("server_flavors", {})
    boot_flavor = user.state.boot_args().flavor_id
    current = flavors.get(server["id"], boot_flavor)
    target = _other_flavor(user, flavor)
    if target == current:
        target = boot_flavor
    server = user.server_action(server, {"resize": {"flavorRef": target}}, "VERIFY_RESIZE", atomic="resize")
    if finish == "confirm":
        flavors[server["id"]] = target
        return user.server_action(server, {"confirmResize": None}, "ACTIVE", atomic="resize_confirm")
    return user.server_action(server, {"revertResize": None}, "ACTIVE", atomic="resize_revert")


def _there_and_back(there: str, status: str | None, back: str, steps: str, done: str | None = "ACTIVE"):
    """A bounce of two server actions, each waited for (None: not waited for); `steps` names its atomic steps."""
    first, second = steps.split()
    return lambda u, s, kw: u.server_action(u.server_action(s, {there: None}, status, atomic=first),
                                            {back: None}, done, atomic=second)


# name -> what it does to an ACTIVE server, leaving it ACTIVE
BOUNCES: dict[str, Callable[[NovaUser, dict, dict], dict]] = {
    "soft_reboot": lambda u, s, kw: u.server_action(s, {"reboot": {"type": "SOFT"}}, "ACTIVE", atomic="soft_reboot"),
    "hard_reboot": lambda u, s, kw: u.server_action(s, {"reboot": {"type": "HARD"}}, "ACTIVE", atomic="hard_reboot"),
    "stop_start": _there_and_back("os-stop", "SHUTOFF", "os-start", "stop_server start_server"),
    "pause_unpause": _there_and_back("pause", "PAUSED", "unpause", "pause_server unpause_server"),
    "suspend_resume": _there_and_back("suspend", "SUSPENDED", "resume", "suspend_server resume_server"),
    "lock_unlock": _there_and_back("lock", None, "unlock", "lock_server unlock_server", done=None),
    "shelve_unshelve": _there_and_back("shelve", "SHELVED_OFFLOADED", "unshelve", "shelve_server unshelve_server"),
    "resize_confirm": lambda u, s, kw: _resize(u, s, kw.get("flavor"), "confirm"),
    "resize_revert": lambda u, s, kw: _resize(u, s, kw.get("flavor"), "revert"),
    "rebuild": lambda u, s, kw: u.server_action(
        s, {"rebuild": {"imageRef": kw.get("image") or u.state.boot_args().image_id}}, "ACTIVE", atomic="rebuild"),
}
# what a bounce needs of the cloud besides compute
BOUNCE_NEEDS = {"resize_confirm": RESIZE, "resize_revert": RESIZE}


def _define(bounce: str) -> None:
    def run(user: NovaUser, *, new_server: bool = False, flavor: str | None = None, image: str | None = None) -> None:
        server = user.boot_server() if new_server else kept(user, "lifecycle.server", user.boot_server)
        server = BOUNCES[bounce](user, server, {"flavor": flavor, "image": image})
        if new_server:
            user.delete_server(server)

    run.__name__ = run.__qualname__ = bounce
    run.__module__ = __name__
    run.__doc__ = f"{bounce.replace('_', ' then ')} the user's server, waiting for each state."
    globals()[bounce] = stress_action(run, types=("compute", "lifecycle"), needs=BOUNCE_NEEDS.get(bounce, Needs()))


for _bounce in BOUNCES:
    _define(_bounce)


def _steps(actions: list) -> list[str]:
    """`["stop_start", {"hard_reboot": 2}]` -> the bounces in order; ValueError names a bad one."""
    steps: list[str] = []
    for item in actions:
        pairs: list[tuple[Any, Any]] = list(item.items()) if isinstance(item, dict) else [(item, 1)]
        for name, count in pairs:
            if name not in BOUNCES:
                raise ValueError(f"unknown bounce {name!r} (known: {', '.join(BOUNCES)})")
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ValueError(f"bounce {name!r} count must be a positive integer, not {count!r}")
            steps += [name] * count
    return steps


def _validate_bounce(kwargs: dict) -> str | None:
    try:
        _steps(kwargs.get("actions", []))
    except ValueError as exc:
        return f"kwarg 'actions': {exc}"
    return None


def _fit_bounce(arguments: dict, options, profile: CloudProfile) -> tuple[dict, list[Skip]]:
    """The bounces of kwarg `actions` the cloud can run; the others are skipped."""
    skips: list[Skip] = []

    def fits(name: str) -> bool:
        reason = profile.lacks(BOUNCE_NEEDS.get(name, Needs()), name)
        if reason:
            skips.append(Skip("boot_and_bounce step", name, reason))
        return not reason

    actions = []
    for item in arguments.get("actions", []):
        if isinstance(item, dict):
            item = {name: count for name, count in item.items() if fits(name)}
            if item:
                actions.append(item)
        elif fits(item):
            actions.append(item)
    return {**arguments, "actions": actions}, skips


@stress_action(types=("compute", "lifecycle"), validate=_validate_bounce, adapt=_fit_bounce)
def boot_and_bounce(user: NovaUser, *, actions: list = ["soft_reboot", "stop_start"],  # noqa: B006
                    flavor: str | None = None, image: str | None = None) -> None:
    """Boot a server, apply each bounce of `actions` in order, delete it (Rally's boot_and_bounce_server)."""
    server = user.boot_server()
    for step in _steps(actions):
        server = BOUNCES[step](user, server, {"flavor": flavor, "image": image})
    user.delete_server(server)
