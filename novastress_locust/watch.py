"""Locust glue for `logwatch`: options, a watcher on the master, LOG failures naming the action.

    locust -f locustfiles/create_destroy.py --target-logfiles '/opt/stack/logs/*.log' \\
        --target-ssh-user stack --target-private-key-path ~/.ssh/id_ed25519 --target-controller ctl

Every new error record on any watched host fires a `request` event of type `LOG`
named `<host>:<file>`: it counts in failures, the exit code and the UI. When the
record carries a request id (or instance id) that an action recorded, the failure
names that action. `--stop-on-error` ends the run on the first one. With the
embedded cloud and no `--target-*` option its log directory is watched locally.
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from pathlib import Path

from . import options as registry
from .cloud import CloudSession
from .errors import UserError, first_line
from .state import request_index, run_state

logger = logging.getLogger("novastress.logwatch")

DEFAULT_INTERVAL = registry.LOG_CHECK_INTERVAL
EMBEDDED_INTERVAL = registry.EMBEDDED_LOG_CHECK_INTERVAL


def add_arguments(parser) -> None:
    """The log-watching argument group alone (options.py holds it; for the watch without the plugin)."""
    registry.add_arguments(parser, groups=[group for group in registry.GROUPS if group[0] == registry.LOG_WATCH])


class LogError(Exception):
    """A logged error record; str is one line, `.lines` the whole record."""

    def __init__(self, summary: str, lines: list[str], action=None) -> None:
        super().__init__(summary)
        self.lines = lines
        self.action = action


class SetupError(UserError):
    """A log-watching option the user must fix; str is one line."""


class LogWatch:
    """Drives a logwatch.LogWatcher from the master (or local) runner, from test start to test stop."""

    def __init__(self, environment) -> None:
        self.environment = environment
        self.watcher = None
        self.findings: deque = deque(maxlen=1000)     # the latest, for reports and the web UI
        self.expected: dict[str, int] = {}            # why -> logged errors the action expected
        self._stopping = threading.Event()
        self._greenlet = None
        self._quit_requested = False
        self.coverage: list = []            # logwatch.HostCoverage of every host, after stop()
        self.disabled: str | None = None    # why watching that was asked for did not happen

    # -- configuration --------------------------------------------------------------------------
    def build(self):
        """A LogWatcher for the options, or None when nothing is to be watched."""
        # paramiko is imported by logwatch only when connecting, after Locust's gevent patching
        from logwatch import LogWatcher, Target, TargetError, WatchConfig, parse_host_map, parse_hosts, resolve
        options = self.environment.parsed_options
        interval = _value(options, "log_check_interval")     # None: not given (0 is refused by the parser)
        config_kwargs = dict(
            patterns=_value(options, "log_pattern") or None, ignore=_value(options, "log_ignore") or None,
            interval=DEFAULT_INTERVAL if interval is None else float(interval),
            follow=bool(_value(options, "log_follow")), from_start=bool(_value(options, "log_from_start")))
        if config_kwargs["interval"] <= 0:
            raise SetupError("--log-check-interval must be greater than zero")
        logfiles = _value(options, "target_logfiles")
        # SSH settings alone ask for a watch unless a fault schedule (faultplan.py) uses them
        remote = any(_value(options, name) for name in ("target_controller", "log_hosts")) or (
            any(_value(options, name) for name in ("target_ssh_user", "target_private_key_path"))
            and not _value(options, "fault"))
        if not logfiles:
            log_dir = embedded_log_dir(self.environment)
            if log_dir is None:
                if remote:
                    raise SetupError("--target-logfiles is not set: give the log files' glob, "
                                     "e.g. --target-logfiles '/opt/stack/logs/*.log'")
                return None
            if interval is None:
                config_kwargs["interval"] = EMBEDDED_INTERVAL   # local reads cost a stat per file
            config = WatchConfig(logfiles=str(Path(log_dir) / "*.log"), **config_kwargs)
            logger.info("log watch: embedded cloud logs in %s", log_dir)
            return LogWatcher.build(config, [Target("embedded", "localhost")], local=True)
        config = WatchConfig(logfiles=logfiles, **config_kwargs)
        if _value(options, "log_local"):
            logger.info("log watch: %s on this machine (--log-local)", logfiles)
            return LogWatcher.build(config, [Target("localhost", "localhost")], local=True)
        try:
            host_map = parse_host_map(_value(options, "log_host_map"))
            controller = _value(options, "target_controller")
            names = [controller] if controller else []
            names += [t.name for t in parse_hosts(_value(options, "log_hosts"))]
            names += self.discover(controller, host_map)
            targets = resolve(names, host_map)
        except TargetError as error:
            raise SetupError(str(error)) from None
        if not targets:
            # Tempest's defaults assume remote nodes; with none given the files are on this machine
            logger.info("log watch: no hosts given, watching %s on this machine", logfiles)
            return LogWatcher.build(config, [Target("localhost", "localhost")], local=True)
        for path, flag in ((_value(options, "target_private_key_path"), "--target-private-key-path"),
                           (_value(options, "known_hosts"), "--known-hosts")):
            if path and not Path(path).expanduser().is_file():
                raise SetupError(f"{flag} {path} does not exist; fix the path")
        logger.info("log watch: %s on %s (%s)", logfiles, ", ".join(t.label for t in targets),
                    "follow" if config.follow else f"every {config.interval:g} s")
        return LogWatcher.build(config, targets, ssh=ssh_settings(options))

    def discover(self, controller: str | None, host_map: dict) -> list[str]:
        """Compute host names by the chosen discovery; trouble is one warning, never fatal."""
        from logwatch import SSHTransport, TargetError, parse_address, parse_service_list
        options = self.environment.parsed_options
        mode = _value(options, "log_discovery")
        cloud = _cloud_target(self.environment)
        if mode is None:
            mode = "os-services" if cloud is not None else "none"
        try:
            if mode == "os-services":
                if cloud is None:
                    raise TargetError("no cloud configured")
                from logwatch import discover_os_services
                # the run state's auth plugin for these credentials: its token, not a second one
                state = run_state(self.environment)
                session = CloudSession(cloud, state.auth(cloud), timeout=_value(options, "request_timeout")).session
                hosts = discover_os_services(session, region_name=cloud.region_name, interface=cloud.interface)
                logger.info("log watch: os-services lists compute hosts %s", ", ".join(hosts) or "(none)")
                return hosts
            if mode == "nova-manage":
                if not controller:
                    raise TargetError("--log-discovery nova-manage needs --target-controller")
                address, port = host_map.get(controller) or parse_address(controller, "--target-controller")
                transport = SSHTransport(ssh_settings(options), address, port)
                try:
                    output = transport.run("nova-manage service list 2>/dev/null").decode("utf-8", "replace")
                finally:
                    transport.close()
                hosts = parse_service_list(output)
                logger.info("log watch: nova-manage lists compute hosts %s", ", ".join(hosts) or "(none)")
                return hosts
        except Exception as error:   # TargetError, TransportError, keystoneauth trouble: never stops the load
            logger.warning("log watch: %s discovery failed: %s; watching only --target-controller and "
                           "--log-hosts", mode, first_line(error))
        return []

    # -- run ------------------------------------------------------------------------------------
    def start(self) -> None:
        import gevent
        self._stopping.clear()
        self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        from logwatch import PatternError
        try:
            watcher = self.build()
        except Exception as error:
            fix = isinstance(error, (SetupError, PatternError))    # the user's to fix: the run fails
            self.disabled = str(error) if fix else first_line(error)
            logger.error("log watch disabled: %s", self.disabled)
            if fix:
                self.environment.process_exit_code = 1
            return
        if watcher is None or self._stopping.is_set():
            return
        self.watcher = watcher
        watcher.start(on_finding=self.report, on_status=self.status)

    def stop(self) -> None:
        self._stopping.set()
        if self._greenlet is not None:
            self._greenlet.join(timeout=30)
        if self.watcher is not None:
            self.watcher.stop(on_finding=self.report)
            self.coverage = list(self.watcher.covered)
            self.watcher = None

    def summary_lines(self) -> tuple[list[str], bool]:
        """What the watch covered, for the end-of-run summary, and whether a host went unwatched."""
        if self.disabled:
            return [f"Log watch: DISABLED: {self.disabled}"], True
        if not self.coverage:
            return [], False
        files = sorted({path for host in self.coverage for path in host.files})
        longest = max(host.watched_seconds for host in self.coverage)
        lines = [f"Log watch: {len(self.coverage)} host(s), {len(files)} file(s), up to {longest:.0f} s"]
        unwatched = False
        for host in self.coverage:
            if host.state == "watched":
                lines.append(f"  {host.host}: {len(host.files)} file(s) watched for {host.watched_seconds:.0f} s")
            else:
                unwatched = True
                lines.append(f"  {host.host}: {host.state.upper()}"
                             f"{f' after {host.watched_seconds:.0f} s' if host.state == 'lost' else ''}: "
                             f"{host.error}; its logs were not checked")
            if host.state != "never reached" and not host.files:
                lines.append(f"  {host.host}: no file matched {self._logfiles()}")
        for why, count in sorted(self.expected.items()):
            lines.append(f"  {count} logged error(s) expected, not counted: {why}")
        return lines, unwatched

    def _logfiles(self) -> str:
        return str(_value(self.environment.parsed_options, "target_logfiles") or "the embedded cloud's *.log")

    def status(self, status) -> None:
        logger.log(logging.INFO if status.ok else logging.WARNING, "log watch: %s", status.message)

    def report(self, finding) -> None:
        """Fire the LOG failure for one record, naming the action when an id leads to one."""
        record = finding.record
        action = self.action_for(record)
        summary = record.summary()
        why = action.expects(record.text) if action is not None else None
        if why is not None:
            # Nova's documented answer to what the action did: said, not counted
            self.expected[why] = self.expected.get(why, 0) + 1
            logger.info("log watch: expected error in %s: %s [action %s by %s]: %s", finding.name, summary,
                        action.action, action.who, why)
            return
        if action is not None:
            summary += f" [action {action.action} by {action.user}, request {action.global_request_id}]"
        faults = run_state(self.environment).faults
        window = faults.window() if faults is not None else None
        if window:
            summary += f" [during fault {window}]"
        error = LogError(summary, list(record.lines), action)
        self.findings.append(finding)
        text_length = sum(len(line) + 1 for line in record.lines)
        logger.error("log error %s: %s (%d lines)", finding.name, summary, len(record.lines))
        self.environment.events.request.fire(
            request_type="LOG", name=finding.name, response_time=0, response_length=text_length,
            response=None, exception=error,
            context={"host": finding.host, "file": finding.path, "lines": list(record.lines),
                     "action": action.action if action else None,
                     "user": action.who if action else None,
                     "global_request_id": action.global_request_id if action else None,
                     "fault": window})
        runner = self.environment.runner
        running = runner is not None and getattr(runner, "state", None) in ("spawning", "running")
        if getattr(self.environment.parsed_options, "stop_on_error", False) and running \
                and not self._quit_requested:
            self._quit_requested = True
            self.environment.process_exit_code = 1
            # the one way to end a run: it spawns runner.quit (not from here: quit() joins this watcher)
            run_state(self.environment).stop_run(f"a logged error in {finding.name} (--stop-on-error)")

    def action_for(self, record):
        index = request_index(self.environment)
        if index is None:
            return None
        return next((action for action in map(index.lookup, record.request_ids()) if action is not None), None)


def ssh_settings(options):
    """SSH settings of every watched host from the options (~/.ssh/config fills the rest)."""
    from logwatch import SSHSettings
    key = _value(options, "target_private_key_path")
    known_hosts = _value(options, "known_hosts")
    port = _value(options, "ssh_port")
    return SSHSettings(user=_value(options, "target_ssh_user") or None,
                       key_filename=str(Path(key).expanduser()) if key else None,
                       port=int(port) if port else None,
                       known_hosts=str(Path(known_hosts).expanduser()) if known_hosts else None,
                       auto_add_host_keys=bool(_value(options, "log_auto_add_host_keys")))


def _cloud_target(environment):
    """The credentials to list compute hosts with: the run's admin ones, resolved by the run state
    (once); None when no cloud is configured."""
    from .credentials import CredentialsError
    state = run_state(environment)
    try:
        state.ensure_target()
    except CredentialsError:
        return None
    return state.admin_target()


def embedded_log_dir(environment) -> str | None:
    """The embedded cloud's log directory when this run uses it (plugin.py keeps it in its RunState)."""
    state = getattr(environment, "novastress", None)
    embedded = getattr(state, "embedded", None)
    if embedded is not None and getattr(embedded, "log_dir", None):
        return str(embedded.log_dir)
    if state is not None and getattr(state, "target", None) is not None:
        return None                       # preflight found a real cloud
    options = environment.parsed_options
    if getattr(options, "embedded_log_dir", None):
        return str(Path(options.embedded_log_dir).resolve())
    return None


def _value(options, name: str):
    value = getattr(options, name, None)
    if isinstance(value, str):
        value = value.strip()
    return value


def register(events) -> None:
    """Wire the options and the master-side watcher into Locust's events (once per Events object)."""
    if getattr(events, "_novastress_watch_registered", False):
        return
    events._novastress_watch_registered = True

    def on_test_start(environment, **_kwargs) -> None:
        from locust.runners import WorkerRunner
        if isinstance(environment.runner, WorkerRunner):
            return           # workers generate load; only the master (or local runner) watches
        state = run_state(environment)
        if state.log_watch is not None:
            state.log_watch.stop()           # a new test in the web UI: the last one's watch ends
        state.log_watch = LogWatch(environment)
        state.log_watch.start()

    def on_test_stop(environment, **_kwargs) -> None:
        state = run_state(environment)
        if state.log_watch is not None and not state.watch_until_swept:
            state.log_watch.stop()           # it stays, for the summary of what it covered

    events.test_start.add_listener(on_test_start)
    events.test_stop.add_listener(on_test_stop)
