"""Tempest's sample stress run: create a few VMs and kill a few VMs.

    locust -f locustfiles/create_destroy.py --headless -t 30s

No cloud configured: the embedded cloud starts. 8 users unless -u says otherwise.
"""
from novastress_locust.actions.servers import server_create_destroy
from novastress_locust.user import NovaUser


class ServerCreateDestroy(NovaUser):
    threads = 8
    tasks = [server_create_destroy]
