"""--max-runs, --stop-on-error, an action failing midway, token reuse and re-authentication."""
from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

from locust_runs import FAST, LOCUST, LOCUSTFILE, ROOT, clean_env, cli_credentials, run_locust, servers_named


def test_max_runs_ends_the_test_when_every_user_is_done(cloud):
    run = run_locust(["-t", "60s", "-u", "3", "--max-runs", "2", *FAST, *cli_credentials(cloud)])
    assert run.returncode == 0, run.output[-3000:]
    summary = run.summary()
    assert summary["users"] == {f"ServerCreateDestroy-{n}": (2, 0) for n in (1, 2, 3)}
    assert (summary["runs"], summary["failed"]) == (6, 0)
    assert "every user finished its 2 runs" in run.output
    assert run.stats_row("ACTION", "server_create_destroy") == (6, 0)
    # 3 users, one shared token: no user had to authenticate
    assert run.stats_row("POST", "identity POST /v3/auth/tokens") is None
    assert servers_named(cloud, f"ns-{run.run_id}-") == []


def test_one_authentication_per_credential_and_reauth_after_expiry(cloud):
    process = subprocess.Popen([LOCUST, "-f", LOCUSTFILE, "--headless", "-t", "6s", "-u", "5", *FAST,
                                *cli_credentials(cloud)], cwd=ROOT, env=clean_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3.5)  # users are running with the first token by now
    admin = cloud.session(admin=True)
    expired = admin.post(f"{cloud.base_url}/fakecloud/expire-tokens").json()["expired"]
    assert expired >= 1
    stdout, stderr = process.communicate(timeout=40)
    assert "Statistics (per process):" in stdout, (stdout + stderr)[-3000:]
    final = (stdout + stderr).rpartition("Shutting down (exit code")[2]
    auths = re.findall(r"^POST\s+identity POST /v3/auth/tokens\s+(\d+)\s+(\d+)\(", final, re.M)
    # the 5 users share the pre-flight token (Locust resets the stats at start, so that one
    # request is not in the table); once the cloud expires it, exactly one user fetches a new one
    assert auths and auths[-1] == ("1", "0"), (stdout + stderr)[-3000:]
    summary = re.search(r"^Summary:\nRun (\d+) actions \((\d+) failed\)$", stdout, re.M)
    assert int(summary.group(1)) > 0 and int(summary.group(2)) == 0


def test_stop_on_error_against_a_planted_fault(cloud_factory):
    faulty = cloud_factory(faults="scheduler-capacity-race", delay_scale=0.1, seed=3,
                           extra_args=["--fault-probability", "scheduler-capacity-race=1.0"])
    run = run_locust(["-t", "30s", "-u", "4", "--stop-on-error", *FAST, *cli_credentials(faulty)])
    assert run.returncode == 1, run.output[-3000:]
    summary = run.summary()
    assert summary["failed"] >= 1
    assert "(--stop-on-error), stopping the run" in run.output
    # the failed action's global request id is in the cloud's logs: traces can be pinned on it
    failed = re.search(r"server_create_destroy failed \[(req-[0-9a-f-]{36})\]: server (\S+) .*went to ERROR",
                       run.output)
    assert failed, run.output[-3000:]
    logs = "".join(p.read_text() for p in Path(faulty.log_dir).glob("*.log"))
    assert failed.group(1) in logs
    # the ERROR server of the failed action was deleted and waited for
    assert servers_named(faulty, f"ns-{run.run_id}-") == []


def test_action_failing_midway_leaves_nothing(cloud_factory):
    faulty = cloud_factory(faults="scheduler-capacity-race", delay_scale=0.1, seed=5,
                           extra_args=["--fault-probability", "scheduler-capacity-race=0.5"])
    run = run_locust(["-t", "30s", "-u", "4", "--max-runs", "3", *FAST, *cli_credentials(faulty)])
    summary = run.summary()
    assert summary["runs"] == 12
    assert summary["failed"] >= 1, run.output[-3000:]
    assert run.returncode == 1
    assert re.search(r"^ATOMIC\s+boot_server\s+\d+\s+[1-9]\d*\(", run.output, re.M)
    assert "went to ERROR: No valid host was found" in run.output
    assert servers_named(faulty, f"ns-{run.run_id}-") == []
    assert "LEAKED" not in run.stdout and "Swept" not in run.stdout


def test_the_run_stops_even_when_an_action_loses_the_stop_in_its_finally(cloud):
    """-t kills each user's greenlet; an error raised in the action's finally replaces that kill.
    The user must stop anyway (else Locust waits for it forever) and leave nothing behind."""
    locustfile = str(Path(__file__).resolve().parent / "locustfiles" / "error_in_finally.py")
    completed = subprocess.run([LOCUST, "-f", locustfile, "--headless", "-t", "4s", "-u", "2", *FAST,
                                *cli_credentials(cloud)], cwd=ROOT, env=clean_env(),
                               capture_output=True, text=True, timeout=90)
    output = completed.stdout + completed.stderr
    assert "Statistics (per process):" in completed.stdout, output[-3000:]
    # interrupted by the stop, not failed by the cloud; nothing ran a second time
    assert "hold_then_fail_to_clean failed" not in output, output[-3000:]
    assert "Interrupted 2 actions at stop" in completed.stdout, output[-3000:]
    run_id = re.search(r"run id (\w+)", output).group(1)
    assert servers_named(cloud, f"ns-{run_id}-") == []
    assert completed.returncode == 0, output[-3000:]
