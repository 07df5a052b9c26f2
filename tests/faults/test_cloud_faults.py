"""Cloud-side faults during a run: each shows as a failure with a clear reason, nothing leaks."""
from __future__ import annotations

import time

from fault_helpers import (QUIET_CLOUD, SERVER_FLOATING_IP, chaos, control, finish, leftovers, run_locust,
                           start_locust)


def test_5xx_answers_fail_actions_with_the_status_and_leave_nothing(cloud_factory):
    cloud = cloud_factory(**QUIET_CLOUD)
    chaos(cloud, service="compute", method="POST", path="/servers$", kind="status", status=503, count=2)
    chaos(cloud, service="compute", method="DELETE", path="/servers/", kind="status", status=500, count=2)
    chaos(cloud, service="networking", method="DELETE", kind="status", status=502, count=1)
    run = run_locust(cloud, "-u", "3", "--max-runs", "4", "-t", "60s", locustfile=SERVER_FLOATING_IP)
    actions, failed = run.totals()
    assert actions == 12 and failed >= 3, run.output[-3000:]
    assert "compute POST /servers -> 503" in run.output
    assert "compute DELETE /servers/{id} -> 500" in run.output
    assert "network DELETE /v2.0/floatingips/{id} -> 502" in run.output
    assert run.returncode == 1
    control(cloud, "DELETE", "/chaos")   # the test's own listing must not meet a leftover rule
    assert leftovers(cloud, f"ns-{run.run_id}-") == {}
    assert "LEAKED" not in run.stdout


def test_slow_answers_past_the_request_timeout_fail_and_leave_nothing(cloud_factory):
    cloud = cloud_factory(**QUIET_CLOUD)
    # the create is answered after the client gave up: the server exists, the user has no id
    chaos(cloud, service="compute", method="POST", path="/servers$", kind="delay", delay=2.5, count=1)
    chaos(cloud, service="compute", method="DELETE", path="/servers/", kind="delay", delay=2.5, count=1)
    chaos(cloud, service="compute", method="GET", path="/servers/detail", kind="delay", delay=2.5, count=2)
    run = run_locust(cloud, "-u", "2", "--max-runs", "4", "-t", "60s", "--request-timeout", "1")
    actions, failed = run.totals()
    assert actions == 8 and failed >= 2, run.output[-3000:]
    assert "ReadTimeout" in run.output or "timed out" in run.output
    # give the delayed requests time to land, then prove nothing of the run is left
    time.sleep(3)
    control(cloud, "DELETE", "/chaos")   # the test's own listing must not meet a leftover rule
    assert leftovers(cloud, f"ns-{run.run_id}-") == {}


def test_connection_resets_fail_actions_and_leave_nothing(cloud_factory):
    cloud = cloud_factory(**QUIET_CLOUD)
    chaos(cloud, service="compute", method="POST", path="/servers$", kind="reset", count=2)
    chaos(cloud, service="compute", method="GET", kind="reset", probability=0.3, count=6)
    chaos(cloud, service="networking", method="POST", kind="reset", count=1)
    run = run_locust(cloud, "-u", "3", "--max-runs", "4", "-t", "60s", locustfile=SERVER_FLOATING_IP)
    actions, failed = run.totals()
    assert actions == 12 and failed >= 3, run.output[-3000:]
    assert "ConnectFailure" in run.output or "Connection aborted" in run.output or \
        "ConnectionError" in run.output, run.output[-3000:]
    control(cloud, "DELETE", "/chaos")   # the test's own listing must not meet a leftover rule
    assert leftovers(cloud, f"ns-{run.run_id}-") == {}


def test_token_expiry_mid_run_is_survived(cloud_factory):
    cloud = cloud_factory(**QUIET_CLOUD)
    process = start_locust(cloud, "-u", "4", "-t", "8s", locustfile=SERVER_FLOATING_IP)
    time.sleep(3)
    for _ in range(2):
        assert control(cloud, "POST", "/expire-tokens").json()["expired"] >= 1
        time.sleep(1.5)
    run = finish(process)
    actions, failed = run.totals()
    assert actions > 0 and failed == 0, run.output[-3000:]
    control(cloud, "DELETE", "/chaos")   # the test's own listing must not meet a leftover rule
    assert leftovers(cloud, f"ns-{run.run_id}-") == {}


def test_a_server_stuck_in_build_is_reported_and_cleaned(cloud_factory):
    cloud = cloud_factory(**QUIET_CLOUD)
    chaos(cloud, service="compute", kind="freeze", name="^ns-stuck1-", count=1)
    run = run_locust(cloud, "-u", "2", "--max-runs", "2", "-t", "60s", "--run-id", "stuck1",
                     "--build-timeout", "2")
    actions, failed = run.totals()
    assert (actions, failed) == (4, 1), run.output[-3000:]
    assert "still BUILD" in run.output and "after 2 s" in run.output
    frozen = control(cloud, "GET", "/chaos").json()["rules"][0]["frozen"]
    assert len(frozen) == 1
    assert leftovers(cloud, "ns-stuck1-") == {}
    assert "LEAKED" not in run.stdout
