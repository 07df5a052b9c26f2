"""The one module that wires novastress into Locust: options, events, run state.

Importing it (the locustfiles do, through `novastress_locust.user`) registers listeners on
`locust.events`:

* `init_command_line_parser` — every option of `options.py` (the log watcher's group too);
* `init` (local runner or master) — resolve the cloud, start the embedded cloud when none is
  configured, authenticate, resolve image/flavor/network, print the cloud profile and leave out
  what the cloud cannot run (cloudprofile.py); any problem, or nothing left to run, is one
  clear line and exit code 2 before a user spawns;
* `test_start` / `test_stop` — workers take the cloud profile from the options and fit their
  user classes to it, and build their shared auth; at the end a run-scoped sweep
  deletes anything named `<prefix>-<run id>-` a user could not;
* `report_to_master` / `worker_report` — per-user action counts, action records, leaks;
* `quitting` — Tempest's summary and the exit code.

The user classes of the run take part through NovaUser's hooks, called here in that order:
`option_checks` in the preflight (and the web form), `run_init` after it, `run_test_stop` at
each test's end before the sweep.
"""
from __future__ import annotations

import atexit
import gc
import logging
import os
import sys
import uuid

from locust import events
from locust.runners import WorkerRunner

from . import cloudprofile, credentials, options, phases, summary
from .cloudprofile import CloudProfile
from .credentials import CloudTarget
from .errors import UserError, exit_with
from .requestlog import ActionRecord
from .state import (MSG_STOP, MSG_USER_DONE, Leak, PreflightError, RunState, class_hooks, request_index,
                    run_state)

LOG = logging.getLogger("novastress")

# -- listeners ---------------------------------------------------------------
@events.init_command_line_parser.add_listener
def _add_options(parser) -> None:
    options.add_arguments(parser)
    # a garbled locust.conf line: one clear line and exit 2, before Locust misreads it
    from .inputs import InputError, check_config_files
    try:
        check_config_files(sys.argv[1:], os.environ)
    except InputError as exc:
        exit_with("novastress", exc)


# the fault schedule first: at test stop it waits for the services coming back and starts what it
# stopped, while the log watch still reads (it stops next) and before the sweep (the last listener)
from . import faultplan as _faultplan  # noqa: E402
_faultplan.register(events)
# the log watcher's master-side listeners (its options are options.py's "Log watching" group)
from . import watch as _watch  # noqa: E402
_watch.register(events)

# distributed end of run, web UI tabs, summary files; registered before `_on_quitting` below, so
# (quitting fires in reverse) they see the run after its summary and exit code are settled
from . import distributed as _distributed, report as _report, webui as _webui  # noqa: E402
_distributed.register(events)
_report.register(events)
_webui.register(events)


@events.init.add_listener
def _on_init(environment, runner=None, **_kwargs) -> None:
    if environment.parsed_options is None or not hasattr(environment.parsed_options, "prefix"):
        return  # Locust used as a library without our options
    state = run_state(environment)
    state.watch_until_swept = True
    opts = environment.parsed_options
    environment.events.quit.add_listener(lambda **kw: _stop_embedded(state))
    if isinstance(runner, WorkerRunner):
        environment.events.report_to_master.add_listener(
            lambda client_id, data, **kw: _report_to_master(environment, client_id, data))
        _run_class_hooks(environment, "run_init", runner)
        return
    environment.events.worker_report.add_listener(
        lambda client_id, data, **kw: _worker_report(environment, client_id, data))
    try:
        preflight(state)
    except UserError as exc:
        _stop_embedded(state, force=True)
        exit_with("novastress", exc)
    state.users_from_threads = opts.num_users is None
    state.spawn_rate_from_users = opts.spawn_rate is None
    if opts.num_users is None:
        # Tempest's "threads" of each entry: the user classes' `threads`, unless [stress] says otherwise
        opts.num_users = opts.default_thread_number_per_action or \
            sum(getattr(cls, "threads", 0) for cls in environment.user_classes or []) or 1
    if opts.spawn_rate is None:
        opts.spawn_rate = float(opts.num_users)      # Tempest started every worker at once
    if runner is not None:
        runner.register_message(MSG_STOP, lambda environment, msg, **kw: state.stop_run(msg.data["reason"]))
        runner.register_message(MSG_USER_DONE, lambda environment, msg, **kw: _worker_user_done(state))
    # the user classes' own set-up of the run (a scenario sizes itself), after the preflight
    _run_class_hooks(environment, "run_init", runner)


def _run_class_hooks(environment, name: str, *args) -> None:
    """Call the user classes' hook `name` (see NovaUser); a UserError it raises is exit 2, any other
    error is logged and the next hook still runs."""
    for hook in class_hooks(environment, name):
        try:
            hook(environment, *args)
        except UserError:
            raise
        except Exception:
            LOG.exception("novastress: %s of %s failed", name, getattr(hook, "__qualname__", hook))


def _worker_user_done(state: RunState) -> None:
    state.users_done += 1
    if state.users_done >= state.environment.runner.target_user_count:
        state.stop_run(f"every user finished its {state.options.max_runs} runs")


def preflight(state: RunState) -> None:
    """Before any load: find the cloud, authenticate, resolve what to boot. Raises one-line errors."""
    from .client import OpenStackClient
    opts = state.options
    from .inputs import check_private_key
    # the log watcher would find out only after the load began
    check_private_key(getattr(opts, "target_private_key_path", None), "--target-private-key-path")
    for add in class_hooks(state.environment, "option_defaults"):
        add(opts)                   # what the user classes' file adds (a scenario's faults)
    for check in class_hooks(state.environment, "option_checks"):
        try:
            check(opts)
        except ValueError as exc:
            raise PreflightError(str(exc)) from None
    state.prefix = opts.prefix
    state.run_id = opts.run_id or uuid.uuid4().hex[:6]
    opts.run_id = state.run_id
    target = credentials.resolve(opts)
    if target is None:
        target = _start_embedded(state)
    credentials.apply_tempest_stress(opts, target)
    state.target = target
    _faultplan.check(opts, embedded=state.embedded is not None)
    LOG.info("novastress: run id %s; every resource is named %s-%s-... (target: %s, from %s)",
             state.run_id, state.prefix, state.run_id, target.who, target.source)
    client = OpenStackClient(state, target, user_name="preflight")
    client.authenticate()
    opts.image = client.find_image(opts.image)
    opts.flavor = client.find_flavor(opts.flavor)
    opts.network = client.find_network(opts.network)
    # what the cloud offers, once, before the first user spawns; the workers get it with the options
    state.profile = cloudprofile.probe(state, client)
    opts.novastress_profile = state.profile.as_dict()
    print(state.profile.table(), file=sys.stderr, flush=True)
    if getattr(opts, "server_timings", False):
        # a compute API older than 2.51 shows a member no instance-action events
        lacking = state.profile.lacks(cloudprofile.Needs(microversion=phases.NEEDS), "--server-timings")
        if lacking:
            print(f"novastress: --server-timings left off: {lacking}", file=sys.stderr, flush=True)
            opts.server_timings = False
    had_classes = bool(state.environment.user_classes)
    state.skipped = cloudprofile.fit(state.environment, state.profile)
    for line in state.skipped:
        print(f"novastress: {line}", file=sys.stderr, flush=True)
    if had_classes and not state.environment.user_classes:
        raise PreflightError("nothing left to run on this cloud: every action was skipped (see above)")
    # workers receive parsed_options at test start: hand them the resolved credentials
    if state.embedded is not None or not (opts.os_auth_url or opts.os_cloud):
        credentials.export_to_options(opts, target.auth)
        opts.os_auth_type = target.auth_type


def _start_embedded(state: RunState) -> CloudTarget:
    from .fakecloud import EmbeddedCloud, EmbeddedCloudError
    opts = state.options
    extra = ["--clouds-yaml", opts.embedded_clouds_yaml] if opts.embedded_clouds_yaml else []
    cloud = EmbeddedCloud(log_dir=opts.embedded_log_dir, faults=opts.embedded_faults,
                          delay_scale=opts.embedded_delay_scale, seed=opts.embedded_seed,
                          services=opts.embedded_services, compute_hosts=opts.embedded_compute_hosts,
                          flavors=opts.embedded_flavors, external_network=not opts.embedded_no_external_network,
                          tenant_network=not opts.embedded_no_tenant_network,
                          snapshots_finish=not opts.embedded_snapshots_never_finish,
                          max_microversion=opts.embedded_max_microversion or None, extra_args=extra)
    try:
        cloud.start()
    except EmbeddedCloudError as exc:
        raise PreflightError(str(exc)) from None
    state.embedded = cloud
    if opts.embedded_keep:
        LOG.info("novastress: the embedded cloud will keep running after Locust exits (pid %s)", cloud.process.pid)
    else:
        atexit.register(cloud.stop)
    print(f"novastress: no cloud configured, started the embedded cloud at {cloud.auth_url} "
          f"(logs in {cloud.log_dir}); to target a real cloud set --os-cloud/OS_CLOUD, "
          f"OS_* variables or --tempest-conf", file=sys.stderr, flush=True)
    return CloudTarget(auth_type="password", auth=cloud.credentials(), source="embedded cloud",
                       region_name="RegionOne")


def _stop_embedded(state: RunState, force: bool = False) -> None:
    if state.embedded is not None and (force or not state.options.embedded_keep):
        state.embedded.stop()


@events.test_start.add_listener
def _on_test_start(environment, **_kwargs) -> None:
    if not hasattr(environment.parsed_options, "prefix"):
        return
    state = run_state(environment)
    opts = environment.parsed_options
    state.prefix = opts.prefix
    state.run_id = opts.run_id or state.run_id
    state.users_done = 0
    state.stopping_reason = None
    state.ending = False
    state.ended.clear()
    # the sweep is the last thing a stop does, after every other module's test_stop listener
    handlers = environment.events.test_stop._handlers
    if _end_of_test_stop in handlers:
        handlers.remove(_end_of_test_stop)
    handlers.append(_end_of_test_stop)
    # a worker learns the master's cloud profile now, and leaves out what the cloud cannot run
    # (the master said why); on the master it keeps a new test from the web UI to the same fit
    if state.profile is None and getattr(opts, "novastress_profile", None):
        state.profile = CloudProfile.from_dict(opts.novastress_profile)
    if state.profile is not None:
        cloudprofile.fit(environment, state.profile)
    _out_of_gc_sight()


@events.spawning_complete.add_listener
def _out_of_gc_sight(**_kwargs) -> None:
    """What exists now (imports, set-up, the users with their clients and sessions) lives as long
    as the test: out of the cyclic garbage collector's sight. With thousands of users its full
    passes over them took a sixth of a worker's CPU (bench/concurrency.py); test_stop gives
    them back to it."""
    gc.collect()
    gc.freeze()


@events.test_stop.add_listener
def _on_test_stop(environment, **_kwargs) -> None:
    gc.unfreeze()     # whatever froze it (spawning_complete carries no environment to ask)
    if not hasattr(environment.parsed_options, "prefix"):
        return
    state = run_state(environment)
    state.ending = True
    state.stop_waiters()
    _run_class_hooks(environment, "run_test_stop")


def _end_of_test_stop(environment, **_kwargs) -> None:
    """The last test_stop listener (put last at each test start): the run-scoped sweep."""
    if not hasattr(environment.parsed_options, "prefix"):
        return
    state = run_state(environment)
    try:
        if not isinstance(environment.runner, WorkerRunner) and not environment.parsed_options.leave_dirty_stack:
            from .sweep import sweep
            sweep(state)
    finally:
        # the log watch reads until here: what the users' last deletes, a service coming back from
        # a fault, or the sweep made the cloud log is still the run's
        if state.log_watch is not None:
            state.log_watch.stop()
        state.ended.set()


def _end_wait(opts) -> float:
    """How long the summary waits for the end-of-run work: the cleanup bound, a server's delete,
    the invariant follow-ups (settling, the quota step's deletes), the services a fault schedule
    is waiting for, and the log watch's last look."""
    faults = float(getattr(opts, "fault_recovery_timeout", 0) or 0) + 5 if getattr(opts, "fault", None) else 0
    return faults + 30 + sum(float(getattr(opts, name, 0) or 0) for name in (
        "cleanup_timeout", "delete_timeout", "invariant_settle_timeout", "invariant_delete_timeout"))


def _worker_report(environment, client_id: str, data: dict) -> None:
    """Master: merge a worker's action counts, records and leaks."""
    report = data.get("novastress")
    if not report:
        return
    state = run_state(environment)
    state.worker_tallies[client_id] = report["tally"]
    state.worker_backoffs[client_id] = report.get("backoffs", {})
    state.interrupted += report.get("interrupted", 0)
    index = request_index(environment)
    for raw in report.get("records", []):
        record = ActionRecord.from_dict(raw)
        known = index.lookup(record.global_request_id)
        if known is not None:
            known.__dict__.update(record.__dict__)
            index.touch(known)
        else:
            index.add(record)
    state.leaks += [Leak(**leak) for leak in report.get("leaks", [])]


def _report_to_master(environment, client_id: str, data: dict) -> None:
    """Worker: send what changed since the last report (the tally whole: it is small)."""
    state = run_state(environment)
    records, state.unreported = state.unreported, []
    leaks, state.leaks = state.leaks, []
    interrupted, state.interrupted = state.interrupted, 0
    data["novastress"] = {"tally": state.tally, "backoffs": state.backoffs,
                          "records": [r.as_dict() for r in records],
                          "leaks": [leak.__dict__ for leak in leaks], "interrupted": interrupted}


# the invariant checks: after this module's own init (the embedded cloud is up) and test_stop
from . import invariants as _invariants  # noqa: E402
_invariants.register(events)


@events.quitting.add_listener
def _on_quitting(environment, **_kwargs) -> None:
    if not hasattr(environment.parsed_options, "prefix") or isinstance(environment.runner, WorkerRunner):
        return
    state = run_state(environment)
    runner = environment.runner
    if runner is not None and runner.state in ("spawning", "running"):
        # Ctrl-C / SIGTERM: stop the users first, so their resources are deleted before we report
        runner.stop()
    if state.ending and not state.ended.is_set():
        # a SIGTERM or Ctrl-C during the end of the run (-t ended, the stop is still at work in
        # another greenlet): the sweep and every restore step finish before the summary
        wait = _end_wait(environment.parsed_options)
        LOG.info("novastress: waiting up to %g s for the end of the run (invariant checks, quota "
                 "restore, sweep) before the summary", wait)
        if not state.ended.wait(wait):
            LOG.error("novastress: the end of the run did not finish within %g s; what it had not deleted "
                      "or restored is not checked: novastress-cleanup --run-id %s looks again", wait,
                      state.run_id)
            state.leaks.append(Leak("resources", f"{state.prefix}-{state.run_id}-*", None,
                                    f"the end of the run did not finish within {wait:g} s"))
    if not state.summary_printed:
        state.summary_printed = True
        verdicts = _report.sla_verdicts(environment)
        tolerated = _report.sla_tolerates(environment)
        findings = _report.run_report(environment).findings.summary_lines()
        text, failed = summary.render(state, tolerated, verdicts, findings)
        print(text, flush=True)
        summary.set_exit_code(environment, state, failed, tolerated, verdicts)


