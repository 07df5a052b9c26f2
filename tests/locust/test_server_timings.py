"""--server-timings: Nova's instance-action events of each server action as NOVA rows, timed by
Nova (to the second on a MySQL/MariaDB-backed Nova, as the embedded one keeps them), per host;
off by default (it costs a GET per server action)."""
from __future__ import annotations

import re

from locust_runs import clean_env, cli_credentials, run_locust
from novastress_locust.phases import Phase, _host, _seconds


def test_an_event_is_timed_by_nova_and_named_after_its_host():
    event = {"event": "compute__do_build_and_run_instance", "start_time": "2026-12-03T07:00:49.100000",
             "finish_time": "2026-12-03T07:00:51.350500", "result": "Success", "hostId": "9f86d081884c7d65"}
    assert _seconds(event) == 2.2505
    assert Phase(event["event"], _host(event), 2.2505, None).row == "compute__do_build_and_run_instance on host 9f86d081"
    assert _host(dict(event, host="compute-2")) == "compute-2"        # what an admin sees


def test_server_timings_report_the_boot_phases_per_host(cloud):
    run = run_locust([*cli_credentials(cloud), "-u", "2", "-t", "5s", "--server-timings"])
    assert run.returncode == 0, run.output[-3000:]
    final = run.output.rpartition("Shutting down (exit code")[2]
    rows = re.findall(r"^NOVA\s+compute__do_build_and_run_instance on host ([0-9a-f]{8})\s+(\d+)\s+(\d+)\(", final,
                      re.M)
    # a row per host (a member sees its hostId), every boot's build, none failed
    assert rows and sum(int(row[1]) for row in rows) >= 2 and {row[2] for row in rows} == {"0"}, final[-3000:]
    assert run.stats_row("NOVA", "conductor_schedule_and_build_instances") is None   # Nova records none on success


def test_without_the_option_nova_is_not_asked(cloud):
    run = run_locust([*cli_credentials(cloud), "-u", "1", "-t", "3s"])
    assert run.returncode == 0, run.output[-3000:]
    assert "NOVA " not in run.output and "os-instance-actions" not in run.output


def test_an_older_compute_api_gets_what_it_has(tmp_path):
    """A Nova whose compute API stops below 2.51 shows a member no events: the option is left off
    with one line and the run is clean; one between 2.51 and 2.62 is asked at its newest (no
    hostId then: the rows are the events alone)."""
    env = clean_env(HOME=str(tmp_path))
    old = run_locust(["-u", "1", "-t", "4s", "--server-timings", "--embedded-max-microversion", "2.50",
                      "--embedded-delay-scale", "0.1"], env=env)
    assert old.returncode == 0, old.output[-3000:]
    assert ("novastress: --server-timings left off: the compute API goes up to microversion 2.50, "
            "--server-timings needs 2.51") in old.stderr, old.stderr[-3000:]
    assert "NOVA " not in old.output.rpartition("Shutting down (exit code")[2]
    newer = run_locust(["-u", "1", "-t", "4s", "--server-timings", "--embedded-max-microversion", "2.55",
                        "--embedded-delay-scale", "0.1"], env=env)
    assert newer.returncode == 0, newer.output[-3000:]
    final = newer.output.rpartition("Shutting down (exit code")[2]
    assert re.search(r"^NOVA\s+compute__do_build_and_run_instance\s+[1-9]\d*\s+0\(", final, re.M), final[-3000:]
