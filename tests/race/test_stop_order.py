"""SIGTERM while the end of the run is at work (the invariant checks' quota step, the sweep):
the summary waits for it, so the quota is restored and nothing is left, under SIGTERM too."""
from __future__ import annotations

from locust_runs import FAST, LOCUST, clean_env, cli_credentials, servers_named, signal_after_run_time


def test_sigterm_during_the_quota_step_waits_for_its_restore_and_the_sweep(cloud_factory):
    # builds take 2 s: the quota step's boots keep the end of the run busy for a few seconds
    cloud = cloud_factory(faults="none", delay_scale=0.1, seed=4, extra_args=["--delay", "build=2:2"])
    admin = cloud.credentials(admin=True)
    command = [LOCUST, "-f", "locustfiles/storm.py", "--headless", *FAST, *cli_credentials(cloud),
               f"--os-admin-username={admin['username']}", f"--os-admin-password={admin['password']}",
               f"--os-admin-project-name={admin['project_name']}", "-t", "6s", "-u", "2",
               "--storm-pool-size", "2", "--storm-group-ratio", "0", "--quota-step", "2",
               "--invariant-delete-timeout", "10", "--invariant-allocation-timeout", "2",
               "--invariant-settle-timeout", "20"]
    # the load has ended; the end-of-run work (settling, then the quota step) runs in Locust's
    # stopping greenlet
    run = signal_after_run_time(command, clean_env(), 1.5, timeout=240)
    output = run.output
    assert "before the summary" in output, output[-4000:]     # the SIGTERM came during the end
    summary_at = output.index("Statistics (per process):")
    assert "LEAKED" not in output and "NOT CHECKED" not in output, output[-4000:]
    # the quota step's boots were made and deleted before the summary
    assert servers_named(cloud, f"ns-{run.run_id}-") == []
    member, admin_session = cloud.session(), cloud.session(admin=True)
    quota = admin_session.get(f"{cloud.base_url}/compute/v2.1/os-quota-sets/{member.get_project_id()}"
                              ).json()["quota_set"]
    assert quota["instances"] == 20000, output[-4000:]       # restored before the process ended
    assert summary_at > 0
