"""The storm's quota step against Nova's two quota checks, in real `locust` runs.

Healthy cloud: the step's concurrent boots race past nova-api's check, the conductor's re-check
puts the excess in ERROR, which is Nova's documented behaviour: no violation. Planted
`quota-recheck-skipped`: the excess is built, and the step reports `quota-exceeded`.
"""
from __future__ import annotations

from pathlib import Path

from locust_runs import servers_named
from test_storm import faulty, fired, invariant_rows, provider_usages, storm, violations

# a short load, then the end-of-run checks and the quota step (headroom 2: four boots at once)
QUOTA_STEP = ["-t", "4s", "-u", "1", "--storm-pool-size", "1", "--storm-group-size", "-1", "--quota-step", "2"]
REFUSED = "Setting instance to ERROR state.: nova.exception.TooManyInstances: Quota exceeded for instances"


def refused_by_the_recheck(cloud) -> int:
    log = Path(cloud.log_dir) / "nova-conductor.log"
    return sum(REFUSED in line for line in log.read_text().splitlines())


def left_behind(cloud, run) -> tuple[list, list, int]:
    """(the run's servers, the providers' non-zero usages, the project's instance quota) after the run."""
    project = cloud.session().get_project_id()
    quota_set = cloud.session(admin=True).get(
        f"{cloud.base_url}/compute/v2.1/os-quota-sets/{project}").json()["quota_set"]
    used = [usage for usage in provider_usages(cloud) if any(usage.values())]
    return servers_named(cloud, f"ns-{run.run_id}-"), used, quota_set["instances"]


def test_quota_step_accepts_racing_boots_and_the_recheck_errors_the_excess(cloud_factory):
    cloud = cloud_factory(faults="none", delay_scale=0.1, seed=8)
    run = storm(cloud, *QUOTA_STEP)
    assert run.returncode == 0, run.output[-4000:]
    assert invariant_rows(run) == {}
    # all four answered 202 or 403, none a failure; more than the limit got past nova-api and
    # the conductor put the excess in ERROR
    assert run.stats_row("POST", "compute POST /servers (quota step)") == (4, 0)
    assert refused_by_the_recheck(cloud) >= 1, run.output[-4000:]
    # the ERROR ones were deleted with the rest: no server, no allocation, the quota restored
    assert left_behind(cloud, run) == ([], [], 20000)


def test_quota_recheck_skipped_is_reported_as_quota_exceeded(cloud_factory):
    cloud = faulty(cloud_factory, "quota-recheck-skipped")
    run = storm(cloud, *QUOTA_STEP)
    assert run.returncode == 1, run.output[-4000:]
    truth = fired(cloud, "quota-recheck-skipped")
    assert truth, run.output[-4000:]
    assert refused_by_the_recheck(cloud) == 0
    assert invariant_rows(run).get("quota-exceeded", 0) >= 1, run.output[-4000:]
    project = cloud.session().get_project_id()
    found = violations(run, "quota-exceeded")
    assert found and all(subject == project for subject, _ in found)
    # pinned on the step's boots: the cloud names the same requests
    planted_ids = {request_id for record in truth for request_id in record["request_ids"]}
    assert all(set(request_ids) & planted_ids for _, request_ids in found)
    assert servers_named(cloud, f"ns-{run.run_id}-") == []
