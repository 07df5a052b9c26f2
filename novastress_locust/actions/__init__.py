"""Stress actions, one module per family; each is a Locust task `action(user)` timed as one ACTION.

    from novastress_locust.actions.servers import server_create_destroy

    class ServerCreateDestroy(NovaUser):
        tasks = [server_create_destroy]
"""
from ..user import action

__all__ = ["action"]
