"""The run's state: one RunState per Locust Environment, and the few records it holds.

    state = run_state(environment)          # created on first use
    target = state.ensure_target()          # the member credentials, resolved once
    admin = state.admin_target()            # --os-admin-*, else the run's own
    state.leaks.append(Leak("server", name, server_id, "still ACTIVE after 120 s"))

The low room of the package: it imports no feature module (users, storm, invariants, sweep,
reports, the web UI), and every one of them may import it.
"""
from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import gevent
import gevent.event
from locust.runners import WorkerRunner

from . import credentials
from .credentials import CloudTarget, CredentialsError
from .errors import UserError
from .requestlog import ActionRecord, RequestIndex, timed

if TYPE_CHECKING:
    from .cloudprofile import CloudProfile

LOG = logging.getLogger("novastress")
MSG_USER_DONE = "novastress_user_done"
MSG_STOP = "novastress_stop"


def class_hooks(environment, name: str) -> list[Callable]:
    """The run's user classes' hook `name` (NovaUser's run_init, run_test_stop, option_checks), once
    per function: the entries of one scenario share theirs. The plugin calls them; the features
    stay unaware of the user classes."""
    found: dict[Any, Callable] = {}
    for cls in environment.user_classes or []:
        hooks = getattr(cls, name, None)
        for hook in hooks if isinstance(hooks, (tuple, list)) else [hooks] if hooks else []:
            found.setdefault(getattr(hook, "__func__", hook), hook)
    return list(found.values())


class PreflightError(UserError):
    """The run cannot start; str() is one clear line."""


@dataclass
class BootArgs:
    """What every server of the run boots from: ids, resolved once before the load."""

    image_id: str
    flavor_id: str
    networks: Any          # "none", "auto" or [{"uuid": ...}]


@dataclass
class Leak:
    """A resource the run could not delete, by id; without an id, what the final sweep could not
    check (`name` is then a pattern such as `ns-1a2b3c-* in project …`)."""

    kind: str
    name: str
    resource_id: str | None
    error: str


@dataclass
class RunState:
    """Everything novastress keeps per Locust Environment (no module-level mutable state)."""

    environment: Any
    run_id: str = ""
    prefix: str = "ns"
    process_tag: str = field(default_factory=lambda: secrets.token_hex(2))
    target: CloudTarget | None = None
    boot: BootArgs | None = None
    embedded: Any = None
    auths: dict[str, Any] = field(default_factory=dict)          # credential key -> auth plugin
    endpoints: dict[tuple[str, str], str | None] = field(default_factory=dict)
    waiters: dict[str, Any] = field(default_factory=dict)        # credential key -> waiter
    user_numbers: dict[str, int] = field(default_factory=dict)
    tally: dict[str, dict[str, list[int]]] = field(default_factory=dict)  # user -> action -> [runs, failed]
    worker_tallies: dict[str, dict] = field(default_factory=dict)
    profile: CloudProfile | None = None
    skipped: list[str] = field(default_factory=list)    # what the cloud's shape left out, and why
    backoffs: dict[str, int] = field(default_factory=dict)               # action -> times it backed off
    worker_backoffs: dict[str, dict[str, int]] = field(default_factory=dict)
    interrupted: int = 0
    # a snapshot's image stayed queued past --snapshot-timeout: this cloud never finishes them
    snapshots_stuck: bool = False
    leaks: list[Leak] = field(default_factory=list)
    swept: list[str] = field(default_factory=list)
    users_done: int = 0
    unreported: list[ActionRecord] = field(default_factory=list)
    stopping_reason: str | None = None
    summary_printed: bool = False
    # the end-of-run work (every test_stop listener: invariant checks, quota restore, sweep)
    # began / is done: the summary waits for it, under SIGTERM too
    ending: bool = False
    ended: Any = field(default_factory=gevent.event.Event)
    # -u / spawn rate not given: filled from the user classes' threads (a scenario may refill them)
    users_from_threads: bool = False
    spawn_rate_from_users: bool = False
    # each feature's own state, made on first use through the feature's accessor
    requests: RequestIndex = field(default_factory=RequestIndex)   # request id -> the action that sent it
    report: Any = None            # report.RunReport (report.run_report)
    log_watch: Any = None         # watch.LogWatch of the test running (master or local runner)
    watch_until_swept: bool = False   # the plugin stops the log watch after its end-of-run sweep
    faults: Any = None            # faultplan.Schedule of the test running (master or local runner)
    invariants: Any = None        # invariants.Invariants (invariants.invariants)
    storm: Any = None             # storm.StormState (storm.storm_state)
    class_setups: Any = None      # unit-test classes set up once per run (actions.unit_test)

    @property
    def options(self):
        return self.environment.parsed_options

    @property
    def names(self) -> re.Pattern:
        """Matches the names this run gives its resources (re's cache keeps it compiled)."""
        return re.compile(rf"\b{re.escape(self.prefix)}-{re.escape(self.run_id)}-[\w-]+")

    @property
    def worker(self) -> str:
        runner = self.environment.runner
        return runner.client_id if isinstance(runner, WorkerRunner) else "local"

    def next_user_name(self, class_name: str) -> str:
        number = self.user_numbers.get(class_name, 0) + 1
        self.user_numbers[class_name] = number
        return f"{class_name}-{number}"

    def count(self, user: str, action: str, failed: bool) -> None:
        runs = self.tally.setdefault(user, {}).setdefault(action, [0, 0])
        runs[0] += 1
        runs[1] += int(failed)

    def backed_off(self, action: str) -> None:
        self.backoffs[action] = self.backoffs.get(action, 0) + 1

    def all_backoffs(self) -> dict[str, int]:
        """Times each action backed off, this process's and every worker's."""
        backoffs = dict(self.backoffs)
        for worker_backoffs in self.worker_backoffs.values():
            for action, times in worker_backoffs.items():
                backoffs[action] = backoffs.get(action, 0) + times
        return backoffs

    # -- credentials and shared auth ---------------------------------------
    def ensure_target(self) -> CloudTarget:
        if self.target is None:
            self.target = credentials.resolve(self.options)
            if self.target is None:
                raise CredentialsError("no cloud configured (set --os-cloud, OS_* variables or --tempest-conf)")
        return self.target

    def use_embedded_admin(self) -> None:
        """With the embedded cloud and no --os-admin-*: its admin's credentials as --os-admin-*, the
        one channel the workers get them by (the options, at test start)."""
        opts = self.options
        if self.embedded is not None and not getattr(opts, "os_admin_username", None):
            admin = self.embedded.credentials(admin=True)
            opts.os_admin_username, opts.os_admin_password = admin["username"], admin["password"]
            opts.os_admin_project_name = admin["project_name"]

    def admin_target(self) -> CloudTarget:
        """The admin credentials, resolved in this one place: --os-admin-*, else the run's own
        (tempest.conf gives admin ones)."""
        opts = self.options
        base = self.ensure_target()
        if not getattr(opts, "os_admin_username", None):
            return base
        auth = {"auth_url": base.auth.get("auth_url"), "username": opts.os_admin_username,
                "password": opts.os_admin_password, "project_name": opts.os_admin_project_name or "admin",
                "user_domain_name": base.auth.get("user_domain_name") or "Default",
                "project_domain_name": base.auth.get("project_domain_name") or "Default"}
        return CloudTarget("password", auth, "--os-admin-username", base.region_name, base.interface,
                           base.verify)

    def auth(self, target: CloudTarget):
        """One auth plugin per credential per process: every user of it shares one token."""
        if target.key not in self.auths:
            self.auths[target.key] = _share_auth(target.plugin(), self.environment)
        return self.auths[target.key]

    def token_rejected(self, target: CloudTarget, token: str | None) -> None:
        """A call got 401 with `token`: drop it unless another user already replaced it.

        When a token expires every user in flight gets a 401 at once; only the first drops
        the token, the next call of each fetches (under the plugin's lock) or reuses the new one.
        """
        plugin = self.auths.get(target.key)
        current = getattr(getattr(plugin, "auth_ref", None), "auth_token", None)
        if plugin is not None and (current is None or current == token):
            plugin.invalidate()

    def boot_args(self) -> BootArgs:
        if self.boot is None:
            opts = self.options
            networks: Any = opts.network or "none"
            if networks not in ("none", "auto"):
                networks = [{"uuid": networks}]
            self.boot = BootArgs(opts.image, opts.flavor, networks)
        return self.boot

    def stop_waiters(self) -> None:
        # stopped waiters start again on the next wait (a new test from the web UI)
        for waiter in self.waiters.values():
            waiter.stop()

    # -- run control ---------------------------------------------------------
    def user_done(self) -> None:
        """A user finished its --max-runs; the test ends when every user has."""
        runner = self.environment.runner
        if isinstance(runner, WorkerRunner):
            runner.send_message(MSG_USER_DONE, {"worker": runner.client_id})
            return
        self.users_done += 1
        if self.users_done >= runner.target_user_count:
            self.stop_run(f"every user finished its {self.options.max_runs} runs")

    def stop_run(self, reason: str) -> None:
        """End the whole run (from any greenlet; a worker asks the master)."""
        runner = self.environment.runner
        if isinstance(runner, WorkerRunner):
            runner.send_message(MSG_STOP, {"reason": reason})
            return
        if self.stopping_reason is None:
            self.stopping_reason = reason
            LOG.info("novastress: %s, stopping the run", reason)
            gevent.spawn(runner.quit)


def run_state(environment) -> RunState:
    """The RunState of this Environment, created on first use."""
    if getattr(environment, "novastress", None) is None:
        environment.novastress = RunState(environment)
    return environment.novastress


def request_index(environment) -> RequestIndex:
    """Which action sent which request, in this Environment."""
    return run_state(environment).requests


def _share_auth(plugin, environment):
    """Every token request of a shared auth plugin fires `identity POST /v3/auth/tokens`."""
    get_auth_ref = plugin.get_auth_ref

    def timed_get_auth_ref(session, **kwargs):
        with timed(environment.events, "POST", "identity POST /v3/auth/tokens"):
            return get_auth_ref(session, **kwargs)

    plugin.get_auth_ref = timed_get_auth_ref
    return plugin
