"""Every action family against a misbehaving embedded cloud: a planted fault (armed at
probability 1) or a chaos rule hits the action, its ACTION row fails with one clear line
naming what went wrong, and the run leaves nothing named after it."""
from __future__ import annotations

import re
import subprocess

from scenario_runs import LOCUST, ROOT, LocustRun, action_rows, admin_options, clean_env, cli_credentials, \
    guest_port, leftovers
from waiting import wait_until  # tests/ is on sys.path

# every run: one quick run per user, fast polls, short waits; no run may outlast its timeout
FAST = ["--status-poll-interval", "0.2", "--build-timeout", "10", "--delete-timeout", "10", "-t", "40s"]


def faulty_cloud(cloud_factory, *faults: str, delays: tuple[str, ...] = ()):
    """An embedded cloud whose planted `faults` fire every time their trigger is reached."""
    extra = [arg for fault in faults for arg in ("--fault-probability", f"{fault}=1")]
    extra += [arg for delay in delays for arg in ("--delay", delay)]
    return cloud_factory(faults=",".join(faults) or "none", delay_scale=0.1, seed=5, extra_args=extra)


def control(cloud, method: str, path: str, body: dict | None = None):
    # imported here: requests (and ssl) must load after Locust's gevent patching, which the
    # other test modules of this directory trigger at collection
    import requests

    token = cloud.session(admin=True).get_token()
    return requests.request(method, f"{cloud.base_url}/fakecloud{path}", json=body,
                            headers={"X-Auth-Token": token}, timeout=10)


def chaos(cloud, **rule) -> None:
    response = control(cloud, "POST", "/chaos", {"rule": rule})
    assert response.status_code == 201, response.text


def fired(cloud, fault: str) -> list[dict]:
    return [f for f in control(cloud, "GET", "/faults").json()["fired"] if f["fault"] == fault]


def scenario(tmp_path, action: str, threads: int = 1, kwargs: str = "") -> str:
    path = tmp_path / "faults.yaml"
    path.write_text(f"- action: {action}\n  threads: {threads}\n" + (f"  kwargs: {kwargs}\n" if kwargs else ""))
    return str(path)


def command(cloud, path: str, *args: str) -> list[str]:
    return [LOCUST, "-f", "locustfiles/scenario.py", "--headless", f"--guest-ssh-port={guest_port(cloud)}",
            *cli_credentials(cloud), *admin_options(cloud), *FAST, "--max-runs", "1", *args,
            f"--scenario={path}"]


def run(cloud, path: str, *args: str, timeout: float = 90) -> LocustRun:
    completed = subprocess.run(command(cloud, path, *args), cwd=ROOT, env=clean_env(), capture_output=True,
                               text=True, timeout=timeout)
    return LocustRun(completed.returncode, completed.stdout, completed.stderr)


def action_errors(result: LocustRun, action: str) -> list[str]:
    """The messages of Locust's final error table for `ACTION <action>` (names and ids generalized)."""
    final = result.output.rpartition("Error report")[2]
    found = [m.group(1) for m in re.finditer(rf"^\s*\d+\s+ACTION {re.escape(action)}: Failure\((.*)\)\s*$",
                                             final, re.M)]
    # a repr() in double quotes when the text has a single one (Nova's 500: <class 'RuntimeError'>)
    return [f"'{text[1:-1]}'" if text[:1] == text[-1:] == '"' else text for text in found]


def assert_failed_clearly(cloud, result: LocustRun, action: str, reason: str) -> None:
    """The action failed, its one error line matches `reason`, nothing of the run is left."""
    rows = action_rows(result)
    assert result.returncode == 1, result.output[-4000:]
    assert rows.get(action, (0, 0))[1] >= 1, (rows, result.output[-4000:])
    errors = action_errors(result, action)
    assert errors and all(re.search(reason, error) for error in errors), (errors, result.output[-4000:])
    assert "Traceback" not in result.output, result.output[-4000:]
    control(cloud, "DELETE", "/chaos")   # the listing below must not meet a rule that is left
    assert "LEAKED" not in result.stdout, result.stdout[-3000:]
    assert leftovers(cloud, f"ns-{result.run_id}-") == {}


def test_server_create_destroy_names_the_no_valid_host_fault(cloud_factory, tmp_path):
    # boots accepted together (all users spawn at once) race for the last capacity: the losers
    # go to ERROR with NoValidHost
    cloud = faulty_cloud(cloud_factory, "scheduler-capacity-race")
    result = run(cloud, scenario(tmp_path, "server_create_destroy", threads=6))
    assert fired(cloud, "scheduler-capacity-race"), result.output[-3000:]
    assert_failed_clearly(cloud, result, "server_create_destroy",
                          r"^'server \{name\} \(\{id\}\) went to ERROR: No valid host was found\. ")


def test_volume_create_delete_names_the_failed_delete(cloud_factory, tmp_path):
    cloud = faulty_cloud(cloud_factory)
    chaos(cloud, service="volume", method="DELETE", path="/volumes/", kind="status", status=503, count=1)
    result = run(cloud, scenario(tmp_path, "volume_create_delete"))
    assert_failed_clearly(cloud, result, "volume_create_delete",
                          r"^'volume DELETE /volumes/\{id\} -> 503 Unexpected API Error\. .* \[\{request_id\}\]'$")


def servers_of(cloud, prefix: str) -> list[dict]:
    admin = cloud.session(admin=True)
    servers = admin.get(f"{cloud.base_url}/compute/v2.1/servers/detail", params={"all_tenants": "1"}).json()
    return [s for s in servers["servers"] if s["name"].startswith(prefix)]


def run_with_attach_racing_the_delete(cloud, tmp_path, run_id: str, admin: bool) -> LocustRun:
    """volume_attach_delete where the action's cleanup deletes the server while its attach is in flight.

    Attaches take 2 s: once the server is ACTIVE a volume poll fails, the action's cleanup deletes
    the server mid-attach, and the planted fault leaves the volume in-use on a server that is gone.
    """
    args = command(cloud, scenario(tmp_path, "volume_attach_delete"), "--run-id", run_id)
    if not admin:
        args = [arg for arg in args if arg not in admin_options(cloud)]
    process = subprocess.Popen(args, cwd=ROOT, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        wait_until(lambda: [s for s in servers_of(cloud, f"ns-{run_id}-") if s["status"] == "ACTIVE"],
                   "the server going ACTIVE", timeout=30, interval=0.05)
        chaos(cloud, service="volume", method="GET", path=r"/volumes/[0-9a-f-]{36}$", kind="status", status=503,
              count=1)
        stdout, stderr = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    result = LocustRun(process.returncode, stdout, stderr)
    assert fired(cloud, "attach-during-delete"), result.output[-3000:]
    return result


def test_volume_attach_delete_lost_detach_is_reset_with_admin_credentials(cloud_factory, tmp_path):
    cloud = faulty_cloud(cloud_factory, "attach-during-delete", delays=("volume=2:2",))
    result = run_with_attach_racing_the_delete(cloud, tmp_path, "vad1", admin=True)
    assert_failed_clearly(cloud, result, "volume_attach_delete",
                          r"^'volume GET /volumes/\{id\} -> 503 Unexpected API Error\. ")
    # the cleanup saw the lost detach, reset the volume as admin and deleted it
    assert re.search(r"volume ns-vad1-\S+ stayed in-use, attached to server [0-9a-f-]{36} which no longer exists "
                     r"\(a lost detach\); reset it as admin",
                     result.output), result.output[-3000:]


def test_volume_attach_delete_lost_detach_without_admin_is_a_clear_leak(cloud_factory, tmp_path):
    cloud = faulty_cloud(cloud_factory, "attach-during-delete", delays=("volume=2:2",))
    result = run_with_attach_racing_the_delete(cloud, tmp_path, "vad2", admin=False)
    assert result.returncode == 1
    # no waiting out --delete-timeout for a detach that cannot come: the leak says why, at once
    assert re.search(r"^LEAKED volume ns-vad2-\S+ \([0-9a-f-]{36}\): volume ns-vad2-\S+ \([0-9a-f-]{36}\) is still "
                     r"in-use, attached to server [0-9a-f-]{36} which no longer exists \(a lost detach\); an admin "
                     r"must reset it .*-> 403 ", result.stdout, re.M), result.stdout[-3000:]
    control(cloud, "DELETE", "/chaos")
    assert set(leftovers(cloud, "ns-vad2-")) == {"volumes"}


def test_lifecycle_bounce_names_the_refused_action(cloud_factory, tmp_path):
    cloud = faulty_cloud(cloud_factory)
    chaos(cloud, service="compute", method="POST", path=r"/servers/[0-9a-f-]{36}/action$", kind="status",
          status=503, count=1)
    result = run(cloud, scenario(tmp_path, "hard_reboot"))
    assert_failed_clearly(cloud, result, "hard_reboot", r"^'compute POST /servers/\{id\}/action reboot -> 503 "
                                                        r"Unexpected API Error\. ")


def test_boot_and_bounce_names_the_server_stuck_in_build(cloud_factory, tmp_path):
    # the server's state machine is held: the boot wait ends at --build-timeout, the cleanup deletes it
    cloud = faulty_cloud(cloud_factory)
    chaos(cloud, service="compute", kind="freeze", name="^ns-", count=1)
    result = run(cloud, scenario(tmp_path, "boot_and_bounce", kwargs="{actions: [stop_start]}"),
                 "--build-timeout", "2")
    assert_failed_clearly(cloud, result, "boot_and_bounce",
                          r"^'server \{name\} \(\{id\}\) still BUILD( \(\w+\))? after 2 s'$")


def test_ssh_floating_names_the_failed_association(cloud_factory, tmp_path):
    cloud = faulty_cloud(cloud_factory)
    chaos(cloud, service="networking", method="PUT", path="/floatingips/", kind="status", status=503, count=1)
    result = run(cloud, scenario(tmp_path, "ssh_floating", kwargs="{verify: [check_port_ssh]}"))
    assert_failed_clearly(cloud, result, "ssh_floating",
                          r"^'network PUT /v2\.0/floatingips/\{id\} -> 503 Unexpected API Error\. ")


def test_volume_attach_verify_names_the_failed_detach(cloud_factory, tmp_path):
    cloud = faulty_cloud(cloud_factory)
    chaos(cloud, service="compute", method="DELETE", path="/os-volume_attachments/", kind="status", status=503,
          count=1)
    result = run(cloud, scenario(tmp_path, "volume_attach_verify"))
    assert_failed_clearly(cloud, result, "volume_attach_verify",
                          r"^'compute DELETE /servers/\{id\}/os-volume_attachments/\{id\} -> 503 Unexpected API Error\. ")


def test_unit_test_names_the_failed_call_inside_the_test(cloud_factory, tmp_path):
    cloud = faulty_cloud(cloud_factory)
    chaos(cloud, service="compute", method="POST", path=r"/servers/[0-9a-f-]{36}/action$", kind="status",
          status=503, count=1)
    test = ("tempest.scenario.test_network_advanced_server_ops.TestNetworkAdvancedServerOps."
            "test_server_connectivity_stop_start")
    result = run(cloud, scenario(tmp_path, "unit_test", kwargs=f"{{test_method: '{test}'}}"))
    # the test's last error line: the call inside it that failed
    assert_failed_clearly(cloud, result, "unit_test TestNetworkAdvancedServerOps.test_server_connectivity_stop_start",
                          r"^'novastress_locust\.cloud\.ApiError: compute POST /servers/\{id\}/action os-stop -> 503 ")
