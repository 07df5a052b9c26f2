"""Server actions (Tempest's tempest.stress.actions.server_create_destroy and friends)."""
from __future__ import annotations

from ..user import NovaUser, action


@action
def server_create_destroy(user: NovaUser) -> None:
    """Boot a server, wait ACTIVE, delete it, wait until it is gone."""
    server = user.boot_server()
    user.delete_server(server)
