"""Tempest's volume stress actions side by side: create/delete, attach then delete the server.

    locust -f locustfiles/volumes.py --headless -t 60s
"""
from novastress_locust.actions.volumes import volume_attach_delete, volume_create_delete
from novastress_locust.scenario import ScenarioUser


class VolumeCreateDelete(ScenarioUser):
    threads = fixed_count = 4
    tasks = [volume_create_delete]


class VolumeAttachDelete(ScenarioUser):
    threads = fixed_count = 2
    tasks = [volume_attach_delete]
