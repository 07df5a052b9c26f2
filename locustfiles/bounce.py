"""Rally's boot_and_bounce_server: boot, reboot/stop/start/pause/... each server, delete it.

    locust -f locustfiles/bounce.py --headless -t 60s
"""
from novastress_locust.actions.lifecycle import boot_and_bounce
from novastress_locust.scenario import ScenarioUser


class BootAndBounce(ScenarioUser):
    threads = fixed_count = 4
    tasks = [boot_and_bounce]
    kwargs = {"actions": ["soft_reboot", "hard_reboot", "stop_start", "pause_unpause", "suspend_resume",
                          "lock_unlock", "shelve_unshelve", "resize_confirm", "resize_revert", "rebuild"]}
