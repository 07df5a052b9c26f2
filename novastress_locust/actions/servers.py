"""Server actions (Tempest's tempest.stress.actions.server_create_destroy and friends)."""
from __future__ import annotations

from typing import Any, Callable

from ..user import NovaUser
from . import stress_action


@stress_action(tempest=("tempest.stress.actions.server_create_destroy.ServerCreateDestroyTest",
                        "tempest.stress.actions.create_destroy_server.CreateDestroyServerTest"),
               types=("compute", "smoke"))
def server_create_destroy(user: NovaUser) -> None:
    """Boot a server, wait ACTIVE, delete it, wait until it is gone."""
    server = user.boot_server()
    user.delete_server(server)


def kept(user: NovaUser, key: str, create: Callable[[], dict], name_key: str = "name") -> dict:
    """A resource the user keeps from run to run (what Tempest made in setUp, deleted in tearDown).

    It is tracked like any other: a failed action's cleanup or the user's stop deletes it,
    and the next run makes a new one.
    """
    store: dict[str, dict] = user.kept.setdefault("resources", {})
    resource = store.get(key)
    if resource is not None and resource.get(name_key) in user.tracked:
        return resource
    store[key] = create()
    return store[key]


def boot_args(extra: dict[str, Any] | None, security_group: dict | None = None,
              keypair: dict | None = None) -> dict[str, Any]:
    """Extra server-create fields: Tempest's vm_extra_args plus the group and key to use."""
    args = dict(extra or {})
    if security_group is not None:
        args["security_groups"] = [{"name": security_group["name"]}]
    if keypair is not None:
        args["key_name"] = keypair["name"]
    return args
