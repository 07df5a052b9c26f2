"""The storm's `snapshot` action (Nova's createImage) through real `locust` runs: no image is left."""
from __future__ import annotations

from pathlib import Path

from locust_runs import images_named, servers_named
from test_storm import storm


def test_snapshot_storm_fails_nothing_and_leaves_no_image(cloud_factory):
    cloud = cloud_factory(faults="none", delay_scale=0.1, seed=6)
    run = storm(cloud, "-t", "10s", "-u", "3", "--storm-pool-size", "2", "--storm-actions", "snapshot",
                "--storm-delete-ratio", "0.3", "--storm-group-size", "-1", "--quota-step", "0")
    assert run.returncode == 0, run.output[-4000:]
    runs, failed = run.totals()
    assert runs > 0 and failed == 0, run.output[-4000:]
    accepted = run.stats_row("POST", "compute POST /servers/{id}/action createImage")
    assert accepted and accepted[0] > 0 and accepted[1] == 0, run.output[-4000:]
    # snapshots were written and their images deleted by the run
    glance = (Path(cloud.log_dir) / "glance-api.log").read_text()
    uploaded = [line for line in glance.splitlines() if " uploaded" in line]
    assert uploaded, glance[-2000:]
    assert images_named(cloud, f"ns-{run.run_id}-") == []
    assert servers_named(cloud, f"ns-{run.run_id}-") == []


def test_snapshots_that_never_finish_are_deleted_as_they_are_and_the_run_ends(cloud_factory):
    """A cloud whose snapshot images stay queued (Nova's fake driver): the first snapshot is waited
    for --snapshot-timeout, then deleted as it is; later ones are not waited for; the run ends
    soon after -t and leaves no image."""
    cloud = cloud_factory(faults="none", delay_scale=0.1, seed=6, snapshots_finish=False)
    run = storm(cloud, "-t", "10s", "-u", "3", "--storm-pool-size", "2", "--storm-actions", "snapshot",
                "--storm-delete-ratio", "0", "--storm-group-size", "-1", "--quota-step", "0",
                "--snapshot-timeout", "2", timeout=90)
    assert run.returncode == 0, run.output[-4000:]
    assert run.output.count("(--snapshot-timeout): deleting it as it is") == 1, run.output[-4000:]
    accepted = run.stats_row("POST", "compute POST /servers/{id}/action createImage")
    # not one snapshot per --snapshot-timeout: only the first one was waited for
    assert accepted and accepted[0] > 3 * 2, run.output[-4000:]
    glance = (Path(cloud.log_dir) / "glance-api.log").read_text()
    assert not [line for line in glance.splitlines() if " uploaded" in line]
    assert images_named(cloud, f"ns-{run.run_id}-") == []
    assert servers_named(cloud, f"ns-{run.run_id}-") == []
