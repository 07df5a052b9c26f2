"""A real cloud's fault commands: a preset's, or --fault-command's over it, run over SSH with the
log watch's host-key rules (a real sshd on loopback), printed by --fault-dry-run, refused when
wrong. The cloud here is an embedded one reached through its credentials, as a real one is."""
from __future__ import annotations

import json
import re
import signal

import pytest

import sshd as sshd_helper
from fault_helpers import finish, run_locust, start_locust
from waiting import wait_until


def test_a_dry_run_prints_the_presets_commands_and_runs_none(cloud, tmp_path):
    run = run_locust(cloud, "-u", "1", "-t", "4s", "--fault-preset", "devstack", "--fault-dry-run",
                     "--fault", "at=1s action=kill service=nova-compute host=compute-1 for=1s",
                     "--summary-json", str(tmp_path / "summary.json"))
    assert "fault dry run: would run on compute-1: sudo systemctl kill --signal=SIGKILL devstack@n-cpu" in run.stderr
    assert "fault dry run: would run on compute-1: sudo systemctl start devstack@n-cpu" in run.stderr
    assert run.returncode == 0, run.output[-3000:]


def admin_options(cloud) -> list[str]:
    admin = cloud.credentials(admin=True)
    return [f"--os-admin-username={admin['username']}", f"--os-admin-password={admin['password']}",
            f"--os-admin-project-name={admin['project_name']}"]


def _ssh_options(tmp_path, server, key, known_hosts) -> list[str]:
    return ["--log-host-map", f"compute-1={server.address}:{server.port}", "--target-ssh-user", server.user,
            "--target-private-key-path", str(key), "--known-hosts", str(known_hosts)]


def test_commands_run_over_ssh_on_the_services_host_with_its_host_key_checked(cloud, tmp_path):
    assert sshd_helper.available(), "OpenSSH server not installed: apt-get install openssh-server"
    key = sshd_helper.make_key(tmp_path / "id_ed25519")
    server = sshd_helper.start_sshd(tmp_path / "sshd", authorized=[key])
    marks = tmp_path / "marks"
    marks.mkdir()
    try:
        known_hosts = sshd_helper.write_known_hosts(tmp_path / "known_hosts", [server])
        summary = tmp_path / "summary.json"
        run = run_locust(cloud, "-u", "1", "-t", "5s", *admin_options(cloud), "--fault-preset", "systemd",
                         "--fault-command", f"restart=touch {marks}/{{name}}-restarted-on-{{host}}",
                         "--fault-name", "nova-compute=openstack-nova-compute",
                         "--fault", "at=1s action=restart service=nova-compute host=compute-1",
                         *_ssh_options(tmp_path, server, key, known_hosts), "--summary-json", str(summary))
        assert (marks / "openstack-nova-compute-restarted-on-compute-1").exists(), run.output[-3000:]
        record = json.loads(summary.read_text())["faults"][0]
        assert record["error"] is None and record["back_seconds"] is not None, record
        assert run.returncode == 0, run.stdout + "\n".join(l for l in run.stderr.splitlines() if "novastress" in l)
        # a host whose key is not the known one: the command is not run, the fault fails the run
        (tmp_path / "other_known_hosts").write_text(
            re.sub(r" \S+$", " AAAAC3NzaC1lZDI1NTE5AAAAIOtkYd0VNGRMTx7r2iMi5ThVkw5RAXMIbRTpmhO5JH9a",
                   server.host_key_line()) + "\n")
        run = run_locust(cloud, "-u", "1", "-t", "5s", "--fault-preset", "systemd",
                         "--fault-command", f"restart=touch {marks}/second",
                         "--fault", "at=1s action=restart service=nova-compute host=compute-1",
                         *_ssh_options(tmp_path, server, key, tmp_path / "other_known_hosts"))
        assert not (marks / "second").exists()
        assert re.search(r"FAULT \+1\.0s restart nova-compute@compute-1: FAILED: restart: .*host key", run.stdout,
                         re.I), run.output[-3000:]
        assert run.returncode == 1
    finally:
        server.stop()


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_signal_mid_fault_starts_what_the_schedule_stopped(cloud, tmp_path, stop):
    marks = tmp_path / "marks"
    marks.mkdir()
    process = start_locust(cloud, "-u", "1", "-t", "60s", "--fault-preset", "systemd", "--fault-local",
                           "--fault-command", f"stop=touch {marks}/stopped-{{name}}",
                           "--fault-command", f"start=touch {marks}/started-{{name}}",
                           "--fault", "at=1s action=stop service=nova-scheduler")
    wait_until(lambda: (marks / "stopped-nova-scheduler").exists(), "the stop command run", timeout=30)
    run = finish(process, stop)
    assert (marks / "started-nova-scheduler").exists(), run.output[-3000:]
    assert "nova-scheduler was stopped by the fault schedule: started again at the end of the run" in run.output
    assert "FAULT NOT RESTORED" not in run.output


@pytest.mark.parametrize("option, message", [
    ("restart", "--fault-command 'restart': write VERB=COMMAND"),
    ("reboot=sudo reboot", "--fault-command 'reboot=sudo reboot': write VERB=COMMAND"),
    ("restart=systemctl restart {unit}", "'unit' is not a placeholder"),
])
def test_a_wrong_fault_command_is_one_line_and_exit_2(cloud, option, message):
    run = run_locust(cloud, "-u", "1", "-t", "3s", "--fault-preset", "systemd", "--fault-local",
                     "--fault-command", option, "--fault", "at=1s action=restart service=nova-api")
    assert run.returncode == 2 and message in run.stderr, run.output[-2000:]
    assert "Traceback" not in run.output
