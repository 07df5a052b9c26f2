"""The headline run: `locust -f locustfiles/create_destroy.py --headless -t 30s`, no configuration."""
from __future__ import annotations

import os
import re
import signal
import subprocess

import yaml

from locust_runs import LOCUST, LOCUSTFILE, ROOT, clean_env, cli_credentials, servers_named
from waiting import wait_until


def _admin_session(clouds_yaml):
    from keystoneauth1 import session
    from keystoneauth1.identity import v3
    entry = yaml.safe_load(clouds_yaml.read_text())["clouds"]["embedded-admin"]
    return session.Session(auth=v3.Password(**entry["auth"])), entry["auth"]["auth_url"]


def test_headline_run_with_no_configuration(tmp_path):
    clouds_yaml = tmp_path / "clouds.yaml"
    env = clean_env(NOVASTRESS_EMBEDDED_CLOUDS_YAML=str(clouds_yaml), NOVASTRESS_EMBEDDED_KEEP="1",
                    HOME=str(tmp_path))
    completed = subprocess.run([LOCUST, "-f", LOCUSTFILE, "--headless", "-t", "15s"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=90)
    output = completed.stdout + completed.stderr
    kept = re.search(r"keep running after Locust exits \(pid (\d+)\)", output)
    assert kept, output[-3000:]
    try:
        banner = [line for line in output.splitlines() if "started the embedded cloud at" in line]
        assert len(banner) == 1 and "logs in" in banner[0] and "OS_CLOUD" in banner[0]
        run_id = re.search(r"run id (\w+);", output).group(1)
        stdout = completed.stdout
        total = re.search(r"^Summary:\nRun (\d+) actions \((\d+) failed\)$", stdout, re.M)
        assert total, stdout[-3000:]
        runs, failed = int(total.group(1)), int(total.group(2))
        users = re.findall(r"^ServerCreateDestroy-(\d+) \(server_create_destroy\): Run (\d+) actions "
                           r"\((\d+) failed\)$", stdout, re.M)
        assert sorted(int(u[0]) for u in users) == list(range(1, 9))  # 8 users by default
        assert sum(int(u[1]) for u in users) == runs > 0
        assert sum(int(u[2]) for u in users) == failed
        # exit 1 when an action failed, or the log watcher (when present) found errors in the logs
        final = output.rpartition("Shutting down (exit code")[2]
        logged = re.search(r"^LOG\s+\S+\s+\d+\s+[1-9]\d*\(", final, re.M)
        assert completed.returncode == (1 if failed or logged else 0), output[-3000:]
        # the stats table has ACTION and ATOMIC rows and templated names
        actions = re.findall(r"^ACTION\s+server_create_destroy\s+(\d+)\s+(\d+)\(", final, re.M)
        assert actions and actions[-1] == (str(runs), str(failed))
        assert re.search(r"^ATOMIC\s+boot_server\s+\d+", output, re.M)
        assert re.search(r"^DELETE\s+compute DELETE /servers/\{id\}\s+\d+", output, re.M)
        assert "Traceback" not in output
        # nothing named ns-<run id>- is left, in any project
        admin, auth_url = _admin_session(clouds_yaml)
        base = auth_url.rsplit("/identity", 1)[0]
        servers = admin.get(f"{base}/compute/v2.1/servers/detail",
                            params={"all_tenants": "1", "name": f"^ns-{run_id}-"}).json()["servers"]
        assert [s["name"] for s in servers] == []
        assert "LEAKED" not in stdout
    finally:
        os.kill(int(kept.group(1)), signal.SIGTERM)


def test_sigterm_mid_run_leaves_nothing(cloud):
    process = subprocess.Popen([LOCUST, "-f", LOCUSTFILE, "--headless", "-t", "60s", "-u", "6",
                                "--status-poll-interval", "0.5", *cli_credentials(cloud)],
                               cwd=ROOT, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    wait_until(lambda: servers_named(cloud, "ns-"), "a server created by the run", 30, interval=0.3)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=40)
    run_id = re.search(r"run id (\w+);", stdout + stderr).group(1)
    assert "Statistics (per process):" in stdout
    assert "Interrupted" in stdout
    assert servers_named(cloud, f"ns-{run_id}-") == []
    assert "LEAKED" not in stdout
