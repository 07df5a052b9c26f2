"""The summary says what the log watch covered: hosts, files, for how long, and every host it
never reached or lost; `--log-require-all-hosts` makes an unwatched host a failure of the run."""
from __future__ import annotations

import json

from locust_runs import FAST, cli_credentials, run_locust
from sshd import free_port


def _run(cloud, tmp_path, *extra: str):
    summary_json = tmp_path / "summary.json"
    run = run_locust(["-u", "2", "-t", "6s", *FAST, *cli_credentials(cloud), "--log-check-interval", "0.5",
                      "--log-discovery", "none", "--summary-json", str(summary_json), *extra], timeout=90)
    return run, json.loads(summary_json.read_text())


def test_a_host_never_reached_is_named_and_can_fail_the_run(cloud, tmp_path):
    port = free_port()                  # nothing listens there: the host's sshd is down
    down = ["--target-logfiles", "/var/log/nova/*.log", "--log-hosts", f"127.0.0.1:{port}"]
    run, document = _run(cloud, tmp_path, *down)
    assert run.returncode == 0, run.output[-3000:]      # the cloud did nothing wrong
    assert f"127.0.0.1:{port}: NEVER REACHED" in run.stdout, run.stdout[-3000:]
    assert "its logs were not checked" in run.stdout
    [host] = document["log_watch"]
    assert host["state"] == "never reached" and host["files"] == [] and host["error"]

    run, document = _run(cloud, tmp_path, *down, "--log-require-all-hosts")
    assert run.returncode == 1, run.output[-3000:]
    assert "--log-require-all-hosts" in run.stdout and document["exit_code"] == 1


def test_log_local_watches_the_files_on_this_machine(cloud, tmp_path):
    run, document = _run(cloud, tmp_path, "--target-logfiles", f"{cloud.log_dir}/*.log", "--log-local",
                         "--log-hosts", "unreachable.invalid")     # --log-local wins over hosts
    assert run.returncode == 0, run.output[-3000:]
    [host] = document["log_watch"]
    assert host["state"] == "watched" and host["watched_seconds"] > 0
    assert any(path.endswith("nova-api.log") for path in host["files"]), host
    assert "Log watch: 1 host(s)" in run.stdout and "localhost: " in run.stdout


def test_a_log_check_interval_that_cannot_be_is_refused_before_the_run(cloud):
    # one option registry: the parser refuses it (exit 2) before a user spawns, and the web UI's
    # start form runs the same conversion
    for bad in ("0", "-5"):
        run = run_locust(["-u", "1", "-t", "5s", *FAST, *cli_credentials(cloud), "--log-check-interval", bad],
                         timeout=60)
        assert run.returncode == 2, run.output[-2000:]
        assert f"--log-check-interval: must be greater than zero, got {bad}" in run.output, run.output[-2000:]
        assert "All users spawned" not in run.output
    from types import SimpleNamespace

    from novastress_locust.webui import form_problem, our_options
    problem = form_problem({"log_check_interval": "0"}, SimpleNamespace(log_check_interval=None))
    assert problem is not None and problem.startswith("--log-check-interval: invalid value '0'"), problem
    assert our_options()["target_private_key_path"] is True          # a secret: never on the page
    assert "log_auto_add_host_keys" not in our_options()              # not offered in the form
