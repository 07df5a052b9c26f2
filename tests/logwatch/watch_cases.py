"""Run by test_watch_isolated.py in its own interpreter. The Locust glue: options, LOG failures on a real runner naming the action, SSH, end to end."""
from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path

import gevent.monkey

# Locust monkey-patches on import and must come before ssl (gevent#1016); other test modules
# import ssl first, so test_watch_isolated.py runs this module in its own interpreter.
assert not ("ssl" in sys.modules and not gevent.monkey.is_module_patched("ssl")), \
    "run this module alone: python -m pytest tests/logwatch/watch_cases.py"

import gevent  # noqa: E402
from locust.argument_parser import LocustArgumentParser  # noqa: E402
from locust.env import Environment  # noqa: E402
from locust.event import Events  # noqa: E402

from novastress_locust import watch as log_watch  # noqa: E402
from novastress_locust.requestlog import ActionRecord  # noqa: E402
from novastress_locust.state import request_index  # noqa: E402

import sshd as sshd_helper  # noqa: E402
from test_local import append, error_record, info_record  # noqa: E402
from waiting import wait_until  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def parse(args: list[str]):
    parser = LocustArgumentParser()
    log_watch.add_arguments(parser)
    return parser, parser.parse_args(args)


def test_options_keep_tempest_names_and_hide_secrets():
    parser, options = parse(["--target-logfiles", "/opt/stack/logs/*.log", "--target-ssh-user", "stack",
                             "--target-private-key-path", "/k", "--target-controller", "ctl:2222",
                             "--log-check-interval", "5", "--log-hosts", "a,b:2200", "--log-follow",
                             "--ssh-port", "2201", "--log-host-map", "compute-1=10.0.0.1"])
    assert (options.target_logfiles, options.target_ssh_user, options.target_private_key_path,
            options.target_controller, options.log_check_interval, options.log_hosts, options.log_follow,
            options.ssh_port) == ("/opt/stack/logs/*.log", "stack", "/k", "ctl:2222", 5.0, "a,b:2200", True, 2201)
    shown = parser.args_included_in_web_ui
    assert {"target_logfiles", "log_pattern", "log_ignore", "log_follow", "log_hosts"} <= set(shown)
    assert "target_private_key_path" in parser.secret_args_included_in_web_ui
    assert "log_auto_add_host_keys" not in shown          # trusting unknown keys: command line only
    _, defaults = parse([])
    # defaults stay "unset" so tempest.conf [stress] can fill them (credentials.apply_tempest_stress)
    assert defaults.target_logfiles is None and defaults.log_check_interval is None


def environment(**options) -> Environment:
    _, parsed = parse([])
    for name, value in options.items():
        setattr(parsed, name, value)
    parsed.embedded_log_dir = None
    parsed.stop_on_error = options.get("stop_on_error", False)
    env = Environment(events=Events(), parsed_options=parsed)
    log_watch.register(env.events)
    log_watch.register(env.events)                        # idempotent: one watcher, not two
    env.create_local_runner()
    return env


def log_errors(env) -> list:
    return [e for e in env.stats.errors.values() if e.method == "LOG"]


def test_log_failure_names_the_action(tmp_path):
    log = tmp_path / "nova-compute.log"
    append(log, error_record(1))                          # before the run: never blamed on it
    env = environment(target_logfiles=str(tmp_path / "*.log"), log_check_interval=0.05)
    record = ActionRecord("server_create_destroy", "NovaUser-3", "local", f"req-{uuid.uuid4()}")
    request_index(env).add(record)
    env.events.test_start.fire(environment=env)
    try:
        wait_until(lambda: env.novastress.log_watch.watcher is not None
                        and env.novastress.log_watch.watcher.hosts[0].ready, "the watcher ready")
        append(log, info_record(2) + error_record(3, request_id=record.global_request_id) + error_record(4))
        wait_until(lambda: len(log_errors(env)) == 2, "len(log_errors(env)) == 2")
    finally:
        env.events.test_stop.fire(environment=env)
    errors = sorted(log_errors(env), key=lambda e: str(e.error))
    assert {e.name for e in errors} == {f"localhost:{log}"}
    named = [str(e.error) for e in errors if "action" in str(e.error)]
    assert named == [f"ERROR nova.compute.manager: boom 3 [action server_create_destroy by NovaUser-3, "
                     f"request {record.global_request_id}]"]
    assert env.stats.entries[(f"localhost:{log}", "LOG")].num_failures == 2
    assert env.stats.entries[(f"localhost:{log}", "LOG")].num_requests == 2


def test_an_error_logged_while_a_fault_is_under_way_is_marked_with_it(tmp_path):
    from novastress_locust.faultplan import FaultRecord, Schedule
    from novastress_locust.faultspec import preset
    from novastress_locust.state import run_state
    log = tmp_path / "nova-compute.log"
    append(log, "")
    env = environment(target_logfiles=str(log), log_check_interval=0.05)
    marked: dict[str, str | None] = {}
    env.events.request.add_listener(lambda request_type, exception=None, context=None, **_kw: marked.update(
        {str(exception): (context or {}).get("fault")}) if request_type == "LOG" else None)
    schedule = Schedule([], preset("embedded"), lambda host, text: (0, ""), lambda service: [], None,
                        lambda *args: None)
    env.events.test_start.fire(environment=env)
    try:
        wait_until(lambda: env.novastress.log_watch.watcher is not None
                        and env.novastress.log_watch.watcher.hosts[0].ready, "the watcher ready")
        run_state(env).faults = schedule
        append(log, error_record(1))                       # no fault yet
        wait_until(lambda: len(log_errors(env)) == 1, "one log error")
        schedule.records.append(FaultRecord("restart nova-conductor", schedule.elapsed(), phase="recovering"))
        append(log, error_record(2))                       # while the conductor comes back
        wait_until(lambda: len(log_errors(env)) == 2, "two log errors")
    finally:
        env.events.test_stop.fire(environment=env)
    assert marked == {"ERROR nova.compute.manager: boom 1": None,
                      "ERROR nova.compute.manager: boom 2 [during fault restart nova-conductor]":
                          "restart nova-conductor"}, marked


def test_stop_on_error_ends_the_run(tmp_path):
    log = tmp_path / "a.log"
    append(log, "")
    env = environment(target_logfiles=str(log), log_check_interval=0.05, stop_on_error=True)
    env.events.test_start.fire(environment=env)
    env.runner.state = "running"
    wait_until(lambda: env.novastress.log_watch.watcher is not None
                    and env.novastress.log_watch.watcher.hosts[0].ready, "the watcher ready")
    append(log, error_record(1))
    wait_until(lambda: env.runner.state == "stopped", "env.runner.state == 'stopped'")
    assert env.process_exit_code == 1 and len(log_errors(env)) == 1


def test_bad_option_is_one_line_and_no_watcher(tmp_path, caplog):
    env = environment(target_logfiles=str(tmp_path / "*.log"), log_hosts="host:99999")
    env.events.test_start.fire(environment=env)
    watch = env.novastress.log_watch
    wait_until(lambda: watch._greenlet.dead, "watch._greenlet.dead")
    env.events.test_stop.fire(environment=env)
    assert watch.watcher is None and env.process_exit_code == 1
    assert any("log watch disabled: --log-hosts" in r.getMessage() for r in caplog.records)


def test_over_ssh_with_explicit_port(tmp_path, sshd_factory, user_key):
    logs = tmp_path / "logs"
    logs.mkdir()
    server = sshd_factory(setenv={"LOGDIR": str(logs)})
    known = sshd_helper.write_known_hosts(tmp_path / "known_hosts", [server])
    env = environment(target_logfiles="$LOGDIR/*.log", log_hosts=server.target, known_hosts=str(known),
                      target_private_key_path=str(user_key), ssh_port=1, log_check_interval=0.1)
    env.events.test_start.fire(environment=env)
    try:
        wait_until(lambda: env.novastress.log_watch.watcher is not None
                        and env.novastress.log_watch.watcher.hosts[0].ready, "the watcher ready")
        append(logs / "nova-api.log", error_record(5))
        wait_until(lambda: log_errors(env), "log_errors(env)")
    finally:
        env.events.test_stop.fire(environment=env)
    error, = log_errors(env)
    assert error.name == f"{server.target}:{logs / 'nova-api.log'}"
    assert str(error.error) == "ERROR nova.compute.manager: boom 5"


def test_zero_setup_run_shows_a_planted_race_naming_its_action(tmp_path):
    """create_destroy against the embedded cloud with a race armed: a LOG failure names the action."""
    locust = str(Path(sys.executable).with_name("locust"))
    completed = subprocess.run(
        [locust, "-f", "locustfiles/create_destroy.py", "--headless", "-t", "6s",
         "--embedded-log-dir", str(tmp_path / "logs"), "--embedded-faults", "scheduler-capacity-race",
         "--embedded-seed", "3", "--embedded-delay-scale", "0.1", "--status-poll-interval", "0.2",
         "--log-check-interval", "0.5"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONUNBUFFERED": "1"})
    output = completed.stdout + completed.stderr
    assert "log watch: embedded cloud logs in" in output, output[-3000:]
    rows = re.findall(r"^LOG\s+embedded:\S+nova-conductor\.log\s+(\d+)\s+(\d+)\(", output, re.M)
    assert rows and int(rows[-1][1]) >= 1, output[-3000:]
    assert re.search(r"Failed to schedule instances: .*\[action server_create_destroy by "
                     r"ServerCreateDestroy-\d+, request req-[0-9a-f-]{36}\]", output), output[-3000:]
    assert completed.returncode == 1                       # logged errors fail the run


def test_os_services_discovery_with_a_host_map(tmp_path, cloud, sshd_factory, user_key):
    """Compute hosts from the embedded cloud's os-services, reached through --log-host-map."""
    from logwatch import discover_os_services
    hosts = discover_os_services(cloud.session(admin=True))
    assert len(hosts) >= 2
    servers, dirs = [], {}
    for name in hosts:
        dirs[name] = tmp_path / name
        dirs[name].mkdir()
        servers.append(sshd_factory(setenv={"LOGDIR": str(dirs[name])}))
    known = sshd_helper.write_known_hosts(tmp_path / "known_hosts", servers)
    creds = cloud.credentials(admin=True)
    env = environment(target_logfiles="$LOGDIR/*.log", known_hosts=str(known),
                      target_private_key_path=str(user_key), log_check_interval=0.1,
                      log_host_map=",".join(f"{name}={server.target}" for name, server in zip(hosts, servers)),
                      os_auth_url=creds["auth_url"], os_username=creds["username"], os_password=creds["password"],
                      os_project_name=creds["project_name"], os_user_domain_name="Default",
                      os_project_domain_name="Default")
    env.events.test_start.fire(environment=env)
    try:
        wait_until(lambda: env.novastress.log_watch.watcher is not None
                        and all(h.ready for h in env.novastress.log_watch.watcher.hosts), "the watcher ready")
        watched = [h.host for h in env.novastress.log_watch.watcher.hosts]
        assert watched == hosts
        append(dirs[hosts[1]] / "nova-compute.log", error_record(8))
        wait_until(lambda: log_errors(env), "log_errors(env)")
    finally:
        env.events.test_stop.fire(environment=env)
    error, = log_errors(env)
    assert error.name == f"{hosts[1]}:{dirs[hosts[1]] / 'nova-compute.log'}"


def test_nova_manage_discovery_over_ssh(tmp_path, sshd_factory, user_key):
    """Tempest's legacy way: `nova-manage service list` on the controller, parsed, hosts mapped."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "nova-manage"
    script.write_text("#!/bin/sh\necho 'DEPRECATED: use openstack compute service list' >&2\ncat <<'EOF'\n"
                      "Binary           Host        Zone      Status     State Updated_At\n"
                      "nova-conductor   ctl         internal  enabled    :-)   2013-07-01 10:00:00\n"
                      "nova-compute     compute-1   nova      enabled    :-)   2013-07-01 10:00:01\n"
                      "nova-compute     compute-2   nova      enabled    XXX   2013-07-01 09:00:00\nEOF\n")
    script.chmod(0o755)
    server = sshd_factory(setenv={"PATH": f"{bin_dir}:/usr/bin:/bin"})
    known = sshd_helper.write_known_hosts(tmp_path / "known_hosts", [server])
    env = environment(target_logfiles="/nonexistent/*.log", target_controller=server.target,
                      log_discovery="nova-manage", known_hosts=str(known),
                      target_private_key_path=str(user_key),
                      log_host_map="compute-1=127.0.0.1:2201,compute-2=127.0.0.2")
    watcher = log_watch.LogWatch(env).build()
    try:
        assert [(h.target.name, h.target.address, h.target.port) for h in watcher.hosts] == [
            (server.target, "127.0.0.1", server.port), ("compute-1", "127.0.0.1", 2201),
            ("compute-2", "127.0.0.2", None)]
    finally:
        watcher.close()
