"""Contention storms and invariant checks against embedded clouds, through real `locust` runs.

Faults off: conflicts are counted on their own rows, no invariant is violated, nothing is left.
Each planted race armed at probability 1: the matching INVARIANT row names the server the cloud's
ground truth (`/fakecloud/faults`) names, with request ids, and the run exits 1.
"""
from __future__ import annotations

import json
import re

import requests
from locust_runs import FAST, clean_env, cli_credentials, images_named, run_locust, servers_named

from detection import detections, first_detections  # the bench's matching, shared

STORM = ["-f", "locustfiles/storm.py"]
# short bounds against the cloud's fast transitions
QUICK = [*FAST, "--invariant-delete-timeout", "3", "--invariant-allocation-timeout", "2",
         "--invariant-check-interval", "1", "--invariant-settle-timeout", "10",
         "--build-timeout", "20", "--delete-timeout", "20", "--request-timeout", "20"]


def storm(cloud, *args: str, admin: bool = True, timeout: float = 180):
    credentials = cli_credentials(cloud)
    if admin:
        creds = cloud.credentials(admin=True)
        credentials += [f"--os-admin-username={creds['username']}", f"--os-admin-password={creds['password']}",
                        f"--os-admin-project-name={creds['project_name']}"]
    return run_locust([*STORM, *QUICK, *credentials, *args], env=clean_env(), timeout=timeout)


def faulty(cloud_factory, faults: str | tuple[str, ...], *extra: str, seed: int = 5):
    """A fast cloud with these planted races (one id or several) armed at probability 1."""
    faults = (faults,) if isinstance(faults, str) else faults
    armed = [arg for fault in faults for arg in ("--fault-probability", f"{fault}=1")]
    return cloud_factory(faults=",".join(faults), delay_scale=0.1, seed=seed, extra_args=[*armed, *extra])


def every_race_found(run, cloud, races) -> tuple[list[dict], list]:
    """The run failed, exactly these races fired and each was found by what it reported:
    (the cloud's ground truth, the run's detections)."""
    assert run.returncode == 1, run.output[-4000:]
    truth = fired(cloud)
    assert {record["fault"] for record in truth} == set(races), run.output[-3000:]
    started, found = detections(run.output)
    first = first_detections(started, found, truth)
    assert set(first) == set(races), (sorted(first), run.output[-3000:])
    return truth, found


def invariant_rows(run) -> dict[str, int]:
    final = run.output.rpartition("Shutting down (exit code")[2]
    return {name: int(count) for name, count in
            re.findall(r"^INVARIANT\s+(\S+)\s+(\d+)\s+\d+\(", final, re.M)}


def violations(run, kind: str) -> list[tuple[str, list[str]]]:
    """(subject, request ids) of every INVARIANT failure of this kind in the final error report."""
    final = run.output.rpartition("Shutting down (exit code")[2]
    found = re.findall(rf"INVARIANT {re.escape(kind)}: InvariantViolation\([\x22'](\S+): .*?\[requests ([^\]]+)\][\x22']\)",
                       final)
    return [(subject, ids.split(", ")) for subject, ids in found]


def fired(cloud, fault: str | None = None) -> list[dict]:
    """The cloud's ground truth: every fired race record (of this fault)."""
    token = cloud.session(admin=True).get_token()
    response = requests.get(f"{cloud.base_url}/fakecloud/faults", headers={"X-Auth-Token": token}, timeout=10)
    return [record for record in response.json()["fired"] if fault in (None, record["fault"])]


def volumes_and_floating_ips(cloud, prefix: str) -> list[str]:
    """Names of every volume and description of every floating IP starting with prefix (admin view)."""
    admin = cloud.session(admin=True)
    volumes = admin.get(f"{cloud.base_url}/volume/v3/volumes/detail", params={"all_tenants": "1"}).json()["volumes"]
    fips = admin.get(f"{cloud.base_url}/networking/v2.0/floatingips").json()["floatingips"]
    return [name for name in [v.get("name") or "" for v in volumes] + [f.get("description") or "" for f in fips]
            if name.startswith(prefix)]


def provider_usages(cloud) -> list[dict]:
    admin = cloud.session(admin=True)
    placement = {"service_type": "placement"}
    providers = admin.get("/resource_providers", endpoint_filter=placement).json()["resource_providers"]
    return [admin.get(f"/resource_providers/{p['uuid']}/usages", endpoint_filter=placement).json()["usages"]
            for p in providers]


def test_storm_without_faults_counts_conflicts_violates_nothing_leaves_nothing(cloud_factory):
    cloud = cloud_factory(faults="none", delay_scale=0.1, seed=2)
    run = storm(cloud, "-t", "12s", "-u", "4", "--storm-pool-size", "3", "--storm-group-ratio", "0.15")
    assert run.returncode == 0, run.output[-4000:]
    assert invariant_rows(run) == {}
    runs, failed = run.totals()
    assert runs > 0 and failed == 0
    # racing requests were refused, each on its own CONFLICT row, none a failure
    conflicts = re.findall(r"^CONFLICT\s+(\w+)\s+(\d+)\s+(\d+)\(", run.output.rpartition("Shutting down")[2], re.M)
    assert conflicts and all(int(fails) == 0 for _, _, fails in conflicts), run.output[-4000:]
    # racing deletes were followed to 404 and their allocations checked (admin), a group burst ran
    assert run.stats_row("GET", "placement GET /allocations/{id} (invariant)")[0] > 0
    assert run.stats_row("ATOMIC", "boot_server_group_burst")[0] > 0
    # the quota step booted past a low limit: some boots refused, none failed
    assert run.stats_row("POST", "compute POST /servers (quota step)") == (4, 0)
    assert servers_named(cloud, f"ns-{run.run_id}-") == []
    assert volumes_and_floating_ips(cloud, f"ns-{run.run_id}-") == []
    assert images_named(cloud, f"ns-{run.run_id}-") == []   # the snapshots' images were deleted
    assert all(not any(usage.values()) for usage in provider_usages(cloud))
    admin = cloud.session(admin=True)
    project = cloud.session().get_project_id()
    quota = admin.get(f"{cloud.base_url}/compute/v2.1/os-quota-sets/{project}").json()["quota_set"]
    assert quota["instances"] == 20000  # restored after the quota step


def test_delete_during_build_is_caught_as_lost_delete_and_leaked_allocations(cloud_factory):
    cloud = faulty(cloud_factory, "delete-during-build")
    run = storm(cloud, "-t", "30s", "--max-runs", "8", "-u", "2", "--storm-delete-ratio", "1",
                "--storm-delete-delay-max", "0", "--storm-group-size", "-1", "--quota-step", "0")
    assert run.returncode == 1, run.output[-4000:]
    rows = invariant_rows(run)
    assert rows.get("server-not-deleted", 0) >= 1 and rows.get("placement-allocations-leak", 0) >= 1, rows
    truth = {record["resource_id"]: record for record in fired(cloud, "delete-during-build")}
    lost = violations(run, "server-not-deleted")
    leaked = violations(run, "placement-allocations-leak")
    assert lost and leaked
    for server_id, request_ids in lost + leaked:
        assert server_id in truth  # every violation is a server the planted race hit
        # pinned on the boot and the DELETE that raced it: the cloud saw the same ids
        assert set(request_ids) & set(truth[server_id]["request_ids"])
        assert all(re.fullmatch(r"req-[0-9a-f-]{36}", request_id) for request_id in request_ids)
    assert "Invariant violations:" in run.stdout
    # the lost servers were deleted again: the run leaves no server behind
    assert servers_named(cloud, f"ns-{run.run_id}-") == []


def test_quota_usage_drift_is_caught_at_the_end(cloud_factory):
    cloud = faulty(cloud_factory, "quota-usage-drift")
    run = storm(cloud, "-t", "30s", "--max-runs", "10", "-u", "3", "--storm-pool-size", "2",
                "--storm-delete-ratio", "1", "--storm-group-size", "-1", "--quota-step", "0")
    assert fired(cloud, "quota-usage-drift"), run.output[-3000:]
    assert run.returncode == 1, run.output[-4000:]
    assert invariant_rows(run).get("quota-usage-mismatch") == 1
    project = cloud.session().get_project_id()
    assert re.search(rf"INVARIANT quota-usage-mismatch: InvariantViolation\([\x22']{project}: quota usage counts "
                     rf"(\d+) instances, the project has 0 servers", run.output), run.output[-3000:]
    # the summary lists the finding, with the first one it grouped
    assert re.search(rf"^FINDING invariant quota-usage-mismatch: 1 time .*; first: {project}: quota usage",
                     run.stdout, re.M), run.stdout[-3000:]


def test_group_bursts_catch_the_scheduler_capacity_race(cloud_factory):
    cloud = faulty(cloud_factory, "scheduler-capacity-race")
    run = storm(cloud, "-t", "6s", "-u", "1", "--storm-pool-size", "1", "--storm-group-ratio", "1",
                "--quota-step", "0")
    assert run.returncode == 1, run.output[-4000:]
    assert invariant_rows(run).get("server-group-host-count", 0) >= 1, run.output[-4000:]
    # an affinity burst has as many members as hosts, an anti-affinity one a member more
    assert re.search(r"INVARIANT server-group-host-count: InvariantViolation\([\x22']\S+: \d of (3 affinity|4 anti-affinity) "
                     r"boots ACTIVE on 3 hosts", run.output), run.output[-3000:]
    assert servers_named(cloud, f"ns-{run.run_id}-") == []


def test_one_host_still_races_its_anti_affinity_bursts(cloud_factory):
    # two members for one host: Nova must put the second in ERROR (NoValidHost); the planted race
    # puts both on the host when the second is accepted while the first is still being scheduled
    # (at this delay scale that takes 0.15 s or more); every burst is anti-affinity: a run of
    # affinity bursts only (one host: nothing to race) would find nothing
    cloud = cloud_factory(faults="group-policy-burst", delay_scale=1.0, seed=5, compute_hosts=1,
                          extra_args=["--fault-probability", "group-policy-burst=1"])
    run = storm(cloud, "-t", "8s", "-u", "1", "--storm-pool-size", "1", "--storm-group-ratio", "1",
                "--storm-group-policy", "anti-affinity", "--quota-step", "0")
    assert run.returncode == 1, run.output[-4000:]
    assert re.search(r"^  hosts +1 nova-compute up and enabled$", run.output, re.M), run.output[-4000:]
    assert re.search(r"INVARIANT server-group-policy: InvariantViolation\([\x22']\S+: anti-affinity group has 1 members "
                     r"sharing a host", run.output), run.output[-3000:]
    assert {record["fault"] for record in fired(cloud)} == {"group-policy-burst"}
    assert servers_named(cloud, f"ns-{run.run_id}-") == []


def test_the_no_valid_host_nova_logs_for_a_healthy_burst_is_expected_not_a_failure(cloud_factory):
    # one host, no planted race: every anti-affinity burst's second member gets NoValidHost, which
    # nova-conductor logs as ERROR; the watch names it as expected of the burst and the run is clean
    cloud = cloud_factory(faults="none", delay_scale=0.1, seed=5, compute_hosts=1)
    run = storm(cloud, "-t", "6s", "-u", "1", "--storm-pool-size", "1", "--storm-group-ratio", "1",
                "--storm-group-policy", "anti-affinity", "--quota-step", "0",
                "--target-logfiles", f"{cloud.log_dir}/*.log", "--log-discovery", "none",
                "--log-check-interval", "0.5")
    expected = re.findall(r"^  (\d+) logged error\(s\) expected, not counted: Nova's answer to a server-group "
                          r"burst racing for hosts", run.stdout, re.M)
    assert expected and int(expected[0]) >= 1, run.output[-4000:]
    assert re.search(r"log watch: expected error in \S*nova-conductor\.log: .*NoValidHost", run.output), \
        run.output[-4000:]
    assert run.returncode == 0, run.output[-4000:]
    assert not re.search(r"^LOG\s", run.output.rpartition("Error report")[2], re.M), run.output[-4000:]
    assert servers_named(cloud, f"ns-{run.run_id}-") == []


def test_member_only_credentials_skip_the_admin_checks_with_one_line(cloud_factory):
    cloud = cloud_factory(faults="none", delay_scale=0.1, seed=4)
    run = storm(cloud, "-t", "6s", "-u", "2", "--storm-pool-size", "2", admin=False)
    assert run.returncode == 0, run.output[-4000:]
    skipped = [line for line in run.output.splitlines() if "skipping the admin-only invariant checks" in line]
    assert len(skipped) == 1, run.output[-4000:]
    assert "placement-allocations-leak, resource-provider-usage, quota-step, server-group-host-count" in skipped[0]
    assert "--os-admin-username" in skipped[0]
    assert run.stats_row("GET", "placement GET /allocations/{id} (invariant)") is None
    assert run.stats_row("POST", "compute POST /servers (quota step)") is None
    assert invariant_rows(run) == {}
    assert servers_named(cloud, f"ns-{run.run_id}-") == []


# the other three planted classes have their own tests above: armed at 1 together with these, the
# scheduler's capacity race takes the burst's boots before the anti-affinity race can
# unshelve-delete-allocations needs a shelved server first: its own test below
STORM_RACES = ("state-change-race", "delete-preempts-action", "group-policy-burst",
               "attach-during-delete", "floating-ip-delete-race")


def test_storm_finds_every_planted_storm_race_pinned_on_its_requests(cloud_factory):
    # an association and an attach are in flight for 0.3 s, an action 0.4 s (the cloud's default is a few
    # ms at this delay scale), and racing deletes go out while the action is seen in progress (with
    # 0.2 s, a loaded machine's look and DELETE once missed every action's window in the 15 s)
    cloud = faulty(cloud_factory, STORM_RACES, "--delay", "network=0.3:0.3", "--delay", "volume=0.3:0.3",
                   "--delay", "action=0.4:0.4")
    # the cloud's own log directory watched locally: compute-side tracebacks become LOG failures
    run = storm(cloud, "-t", "15s", "-u", "4", "--storm-pool-size", "3", "--storm-actions",
                "soft_reboot,attach_volume,associate_floating_ip", "--storm-delete-ratio", "0.5",
                "--storm-delete-delay-max", "0.3", "--storm-delete-timing", "in-flight",
                # random rounds only (race plans have a test of their own): the double state changes
                # that provoke the API's check-then-save race come from them, often enough that the
                # race fires within the 15 s on a loaded machine too; a burst in 4 rounds: half of them
                # anti-affinity, whose boots race only when scheduled within 0.1 s of each other (at
                # 0.1, a CI run once saw none race)
                "--storm-group-ratio", "0.25", "--storm-plan-ratio", "0", "--storm-double-ratio", "0.6",
                "--quota-step", "0",
                "--target-logfiles", f"{cloud.log_dir}/*.log", "--log-discovery", "none", "--log-check-interval", "0.5")
    truth, found = every_race_found(run, cloud, STORM_RACES)

    def evidence(fault: str, kind: str, name: str | None = None) -> list:
        """(detection, record) pairs of this fault found by detections of this kind."""
        return [(d, r) for d in found if d.kind == kind and (name is None or d.name == name or d.log == name)
                for r in truth if r["fault"] == fault and d.finds(r)]

    # a 500 on the second of two racing state changes: the failure names that very request
    failures = evidence("state-change-race", "failure")
    assert failures and all(d.status == 500 and d.request_ids[-1] in r["request_ids"] for d, r in failures)
    # the compute-side traceback of an action cut short by a DELETE: a LOG failure naming the action
    logged = evidence("delete-preempts-action", "LOG")
    assert logged and all(d.log.startswith("nova-compute-") and set(d.request_ids) & set(r["request_ids"])
                          for d, r in logged)
    # a burst that broke anti-affinity: the group's violation carries the burst's boot request ids
    groups = evidence("group-policy-burst", "INVARIANT", "server-group-policy")
    assert groups and all(set(d.request_ids) & set(r["request_ids"]) for d, r in groups)
    assert invariant_rows(run).get("server-group-policy", 0) >= 1
    # a volume left on a deleted server, a floating IP left on its deleted port: named and pinned
    for fault, kind in (("attach-during-delete", "volume-attached-to-deleted-server"),
                        ("floating-ip-delete-race", "floating-ip-on-gone-port")):
        left = evidence(fault, "INVARIANT", kind)
        assert left and all(set(d.request_ids) & set(r["request_ids"]) for d, r in left), (fault, run.output[-3000:])
    assert servers_named(cloud, f"ns-{run.run_id}-") == []
    assert volumes_and_floating_ips(cloud, f"ns-{run.run_id}-") == []


def test_storm_attaches_and_associates_without_faults_and_leaves_nothing(cloud_factory):
    cloud = cloud_factory(faults="none", delay_scale=0.1, seed=6)
    run = storm(cloud, "-t", "10s", "-u", "3", "--storm-pool-size", "2", "--storm-actions",
                "attach_volume,associate_floating_ip", "--storm-delete-ratio", "0.3", "--storm-delete-delay-max",
                "0.2", "--storm-group-size", "-1", "--quota-step", "0")
    assert run.returncode == 0, run.output[-4000:]
    assert invariant_rows(run) == {}
    runs, failed = run.totals()
    assert runs > 0 and failed == 0
    # both actions ran, were raced, and their volumes / floating IPs were taken back
    assert run.stats_row("POST", "compute POST /servers/{id}/os-volume_attachments (storm)")[0] > 0
    assert run.stats_row("PUT", "network PUT /v2.0/floatingips/{id} (storm)")[0] > 0
    assert run.stats_row("DELETE", "compute DELETE /servers/{id} (storm)")[0] > 0
    assert run.stats_row("GET", "volume GET /volumes/{id} (invariant)")[0] > 0
    assert servers_named(cloud, f"ns-{run.run_id}-") == []
    assert volumes_and_floating_ips(cloud, f"ns-{run.run_id}-") == []


def resource_race(cloud_factory, fault: str, action: str, delay: str):
    """A storm of one resource action, half of them raced at once by a DELETE, with the planted
    race armed at probability 1 and its window widened (`delay`), the cloud's logs watched."""
    cloud = faulty(cloud_factory, fault, "--delay", delay)
    # half the refills are boots raced by a DELETE too: the pool still fills
    run = storm(cloud, "-t", "30s", "--max-runs", "10", "-u", "2", "--storm-pool-size", "2", "--storm-actions", action,
                "--storm-delete-ratio", "0.5", "--storm-delete-delay-max", "0", "--storm-group-size", "-1",
                "--quota-step", "0", "--target-logfiles", f"{cloud.log_dir}/*.log", "--log-discovery", "none",
                "--log-check-interval", "0.5")
    truth = fired(cloud, fault)
    assert truth, run.output[-4000:]
    assert run.returncode == 1, run.output[-4000:]
    started, found = detections(run.output)
    assert fault in first_detections(started, found, truth), run.output[-4000:]
    # nothing is left: the round took its volume / floating IP back after the server was gone
    assert servers_named(cloud, f"ns-{run.run_id}-") == []
    assert volumes_and_floating_ips(cloud, f"ns-{run.run_id}-") == []
    return run, truth, found


def test_attach_racing_the_delete_is_caught_as_a_volume_left_on_the_deleted_server(cloud_factory):
    run, truth, found = resource_race(cloud_factory, "attach-during-delete", "attach_volume", "volume=0.5:0.5")
    by_server = {record["resource_id"]: record for record in truth}
    left = violations(run, "volume-attached-to-deleted-server")
    assert left, run.output[-4000:]
    for server_id, request_ids in left:
        # the very server the race hit, pinned on the attach and the DELETE that raced it
        assert server_id in by_server
        assert set(request_ids) & set(by_server[server_id]["request_ids"])
    # the compute traceback of the lost attach: a LOG failure carrying the attach's request id
    logged = [d for d in found if d.kind == "LOG" and any(d.finds(record) for record in truth)]
    assert logged and all(d.log.startswith("nova-compute-") for d in logged), run.output[-4000:]
    # the cleanup reset the lost detach with the admin credentials before deleting the volume
    assert "(a lost detach); reset it as admin" in run.output


def test_association_racing_the_delete_is_caught_as_a_floating_ip_on_a_gone_port(cloud_factory):
    run, truth, found = resource_race(cloud_factory, "floating-ip-delete-race", "associate_floating_ip",
                                      "network=0.3:0.3")
    by_fip = {record["resource_id"]: record for record in truth}
    left = violations(run, "floating-ip-on-gone-port")
    assert left, run.output[-4000:]
    for fip_id, request_ids in left:
        assert fip_id in by_fip
        assert set(request_ids) & set(by_fip[fip_id]["request_ids"])
    assert re.search(r"INVARIANT floating-ip-on-gone-port: InvariantViolation\([\x22']\S+: floating IP [\d.]+ \(ERROR\) "
                     r"still bound to port [0-9a-f-]{36} \(fixed IP [\d.]+\), which no longer exists", run.output), \
        run.output[-3000:]
    logged = [d for d in found if d.kind == "LOG" and any(d.finds(record) for record in truth)]
    assert logged and all(d.log == "neutron-server.log" for d in logged), run.output[-4000:]


def test_unshelve_racing_the_delete_is_caught_as_leaked_allocations_of_that_server(cloud_factory):
    fault = "unshelve-delete-allocations"
    cloud = faulty(cloud_factory, fault, "--delay", "action=0.2:0.2")
    # random rounds only: a shelve, later an unshelve of the shelved server, raced by a DELETE
    run = storm(cloud, "-t", "12s", "-u", "3", "--storm-pool-size", "3", "--storm-actions", "shelve,unshelve",
                "--storm-delete-ratio", "0.5", "--storm-delete-delay-max", "0.3", "--storm-delete-timing", "in-flight",
                "--storm-group-ratio", "0", "--storm-double-ratio", "0", "--storm-plan-ratio", "0", "--quota-step", "0")
    assert run.returncode == 1, run.output[-4000:]
    truth = fired(cloud)
    assert truth and {record["fault"] for record in truth} == {fault}, run.output[-3000:]
    _, found = detections(run.output)
    # the allocations an unshelve re-created after the delete: a leak of exactly that server
    by_server = {record["resource_id"]: record for record in truth}
    leaks = [d for d in found if d.kind == "INVARIANT" and d.name == "placement-allocations-leak"]
    unpinned = [d.line for d in leaks
                if d.subject not in by_server or not set(d.request_ids) & set(by_server[d.subject]["request_ids"])]
    assert leaks and not unpinned, (unpinned, run.output[-3000:])
    assert servers_named(cloud, f"ns-{run.run_id}-") == []


def test_race_plans_alone_line_up_the_unshelve_and_attach_races(cloud_factory):
    """No random racing deletes (--storm-delete-ratio 0) and only race plans: each plan shelves the
    member and waits, or makes a volume, then fires the unshelve / attach and DELETEs the server while
    it is in flight — both planted races fire, are found, and nothing is left."""
    races = ("unshelve-delete-allocations", "attach-during-delete")
    cloud = faulty(cloud_factory, races, "--delay", "action=0.2:0.2", "--delay", "volume=0.3:0.3", seed=7)
    run = storm(cloud, "-t", "12s", "-u", "3", "--storm-pool-size", "3", "--storm-actions", "unshelve,attach_volume",
                "--storm-plan-ratio", "1", "--storm-delete-ratio", "0", "--storm-delete-delay-max", "0.5",
                "--storm-group-ratio", "0", "--storm-double-ratio", "0", "--quota-step", "0",
                "--target-logfiles", f"{cloud.log_dir}/*.log", "--log-discovery", "none", "--log-check-interval", "0.5")
    every_race_found(run, cloud, races)
    # the plans shelved before they unshelved; every racing DELETE came from a plan
    assert run.stats_row("POST", "compute POST /servers/{id}/action shelve")[0] > 0
    assert run.stats_row("DELETE", "compute DELETE /servers/{id} (storm)")[0] > 0
    assert servers_named(cloud, f"ns-{run.run_id}-") == []
    assert volumes_and_floating_ips(cloud, f"ns-{run.run_id}-") == []


def test_a_late_allocation_healed_later_is_still_a_leak_with_how_long_it_lived(cloud_factory, tmp_path):
    """The allocation check reads for its whole window after the server is gone: allocations an
    unshelve re-created after the DELETE, then removed by compute's periodic task (60 s x 0.1 here),
    are reported, with how long they lived, although Placement is clean again by the end."""
    fault = "unshelve-delete-allocations"
    cloud = faulty(cloud_factory, fault, "--delay", "action=0.2:0.2")
    run = storm(cloud, "-t", "20s", "-u", "3", "--storm-pool-size", "3", "--storm-actions", "shelve,unshelve",
                "--storm-delete-ratio", "0.5", "--storm-delete-delay-max", "0.3", "--storm-delete-timing", "in-flight",
                "--storm-group-ratio", "0", "--storm-double-ratio", "0", "--storm-plan-ratio", "0", "--quota-step", "0",
                "--invariant-allocation-timeout", "30", "--summary-json", str(tmp_path / "summary.json"))
    assert run.returncode == 1, run.output[-4000:]
    # the summary file names each violation: its server, how long the leak lived, the requests
    violations = json.loads((tmp_path / "summary.json").read_text())["violations"]
    healed = [row for row in violations if row["kind"] == "placement-allocations-leak"
              and re.search(r"held .* for \d+-\d+ s after it was gone \(healed since\)", row["detail"])]
    assert healed, violations
    assert all(re.fullmatch(r"[0-9a-f-]{36}", row["subject"]) and row["request_ids"] for row in healed), healed
    assert servers_named(cloud, f"ns-{run.run_id}-") == []


def test_a_resize_racing_the_delete_is_caught_as_the_leaked_allocation_of_its_migration(cloud_factory):
    """A DELETE landing while a resize is in flight leaves the migration's allocation on the source
    host for good (the cloud logs it at INFO only): the storm reads a resized server's migrations
    while it still exists and reports the one whose allocation outlives it, under its requests."""
    fault = "resize-delete-migration-leak"
    cloud = faulty(cloud_factory, fault, "--delay", "action=0.2:0.2")
    run = storm(cloud, "-t", "12s", "-u", "3", "--storm-pool-size", "3", "--storm-actions", "resize",
                "--storm-delete-ratio", "0.5", "--storm-delete-delay-max", "0.3", "--storm-delete-timing", "in-flight",
                "--storm-group-ratio", "0", "--storm-double-ratio", "0", "--storm-plan-ratio", "0", "--quota-step", "0",
                "--invariant-allocation-timeout", "5")
    assert run.returncode == 1, run.output[-4000:]
    truth = fired(cloud)
    assert truth and {record["fault"] for record in truth} == {fault}, run.output[-3000:]
    by_server = {record["resource_id"]: record for record in truth}
    leaks = re.findall(r"INVARIANT placement-allocations-leak: InvariantViolation\([\x22']([0-9a-f-]{36}): migration of "
                       r"server ([0-9a-f-]{36}) \(its resize\): Placement still holds", run.output)
    assert leaks, run.output[-4000:]
    assert {server for _, server in leaks} <= set(by_server), (leaks, by_server)
    _, found = detections(run.output)
    pinned = [d for d in found if d.kind == "INVARIANT" and d.name == "placement-allocations-leak"
              and any(set(d.request_ids) & set(record["request_ids"]) for record in truth)]
    assert pinned, run.output[-4000:]
    assert servers_named(cloud, f"ns-{run.run_id}-") == []


def test_resizes_with_no_race_leave_migrations_nothing_to_report(cloud_factory):
    # the migrations' allocations come and go with the resizes (confirmed, reverted, deleted
    # mid-way): every one is freed, and a live server's resize is counted in its source's usage
    cloud = cloud_factory(faults="none", delay_scale=0.1, seed=6)
    run = storm(cloud, "-t", "10s", "-u", "3", "--storm-pool-size", "3",
                "--storm-actions", "resize,confirm_resize,revert_resize", "--storm-delete-ratio", "0.5",
                "--storm-delete-timing", "in-flight", "--storm-group-ratio", "0", "--quota-step", "0",
                "--invariant-allocation-timeout", "5")
    assert run.returncode == 0, run.output[-4000:]
    assert invariant_rows(run) == {}, run.output[-4000:]
    assert run.stats_row("GET", "compute GET /os-migrations (invariant)") is not None, run.output[-4000:]
    assert servers_named(cloud, f"ns-{run.run_id}-") == []
