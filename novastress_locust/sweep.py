"""The end-of-run sweep: what no user deleted, named `<prefix>-<run id>-`, goes.

Users delete their own resources; the sweep is the net under them — a worker killed with
SIGKILL, a user stopped before its cleanup ran. It runs on the master (or the local runner)
once every worker has stopped, with the code of `novastress-cleanup` (cleanup.py): servers, server groups,
snapshot images, floating IPs, volume attachments, volume snapshots, volumes, keypairs and
security groups, in dependency order, with retries — and with admin credentials (--os-admin-*,
or the run's own when they hold the admin role) in every project, so the run's isolated
projects and users go too. What it deletes is listed as swept; what it cannot is a leak with
its id and reason, so the summary says LEAKED and the exit code 1. The kinds of a service the
catalog does not list are skipped (nothing of them can exist); a kind it could not list at all
is NOT CHECKED, never a leak without an id.
"""
from __future__ import annotations

import logging

from .cleanup import Clouds, Resource, Scope, Settings, SweepPass, connect_clouds, gone_after_all, sweep_run
from .credentials import CloudTarget
from .errors import first_line
from .state import Leak, RunState

LOG = logging.getLogger("novastress")
CONCURRENCY = 16


def sweep(state: RunState) -> None:
    """Delete every resource of the run still there (`--full-clean-stack`: of earlier runs too)."""
    if state.target is None or not state.run_id:
        return
    opts = state.options
    # bounded like the rest of the stop: a server's delete after the users' cleanup bound; the
    # summary waits that long for it (plugin._end_wait), and names what is still there then
    settings = Settings(interval=opts.status_poll_interval, request_timeout=opts.request_timeout,
                        timeout=opts.cleanup_timeout + opts.delete_timeout, concurrency=CONCURRENCY)
    pattern = f"{state.prefix}-{state.run_id}-"
    _after_delete_checks(state)
    try:
        clouds = connect_clouds(state.target, _admin_target(state), settings, auth=state.auth)
        passes = sweep_run(state.target, Scope(state.prefix, state.run_id), settings,
                           every_run=bool(opts.full_clean_stack), out=_LogLines(), clouds=clouds)
    except Exception as exc:  # CleanupError (credentials) or a surprise: the run cannot vouch
        reason = first_line(exc)
        LOG.error("novastress: the final sweep could not run: %s", reason)
        _leak(state, Leak("resources", f"{pattern}*", None, f"the final sweep could not run: {reason}"))
        return
    for one in passes:
        record(state, one)
    _drop_gone(state, clouds)


def _drop_gone(state: RunState, clouds: Clouds) -> None:
    """A leak a user reported whose resource the cloud finished deleting after all is no leak
    (looked up with the sweep's own connections)."""
    claimed = [(leak.kind, leak.resource_id) for leak in state.leaks if leak.resource_id]
    try:
        gone = gone_after_all(clouds, claimed)
    except Exception as exc:  # the claims stand: better a leak looked at twice than one missed
        LOG.warning("novastress: could not check the leaks again: %s", first_line(exc))
        return
    for leak in [leak for leak in state.leaks if leak.resource_id in gone]:
        LOG.info("novastress: final sweep: %s %s (%s) is gone after all (%s)", leak.kind, leak.name,
                 leak.resource_id, leak.error)
        state.leaks.remove(leak)


def _after_delete_checks(state: RunState) -> None:
    """Let the invariant checks following accepted DELETEs end first (invariants.py): the sweep
    finishing a lost delete before its check's deadline would hide the violation."""
    checks = state.invariants
    if checks is not None and getattr(checks, "active", False):
        opts = state.options
        # what invariants.py's own test_stop grants them; its later stop() then finds none left
        checks.stop(wait=opts.invariant_delete_timeout + opts.invariant_allocation_timeout)


def record(state: RunState, one: SweepPass) -> None:
    """Deleted resources into `state.swept`, failures into `state.leaks` (one per resource)."""
    for kind, result in one.results.items():
        for resource in result.deleted:
            if resource.kind == "volume attachment":
                continue  # a step towards deleting the volume, which is counted itself
            state.swept.append(_label(resource, one.scope))
            # a user that gave up on it reported a leak: the sweep got it after all
            state.leaks = [leak for leak in state.leaks if not _same(leak, resource)]
        for resource, reason in result.failed:
            if resource is None:
                _leak(state, Leak(kind, f"{one.scope.pattern}* in {one.where}", None, reason))
            elif resource.kind == "volume attachment":
                volume = resource.detail.get("volume") or {}
                _leak(state, Leak("volume", volume.get("name") or resource.name, resource.id, reason))
            else:
                _leak(state, Leak(resource.kind, _label(resource, one.scope), resource.id, reason))


def _leak(state: RunState, leak: Leak) -> None:
    # the user's own report of the same resource says more (what it was doing): keep one line
    if leak.resource_id is None or not any(known.resource_id == leak.resource_id for known in state.leaks):
        state.leaks.append(leak)


def _same(leak: Leak, resource: Resource) -> bool:
    if leak.resource_id is not None:
        return leak.resource_id == resource.id
    return leak.name == resource.name


def _label(resource: Resource, scope: Scope) -> str:
    """The resource's name; one of ours without it (an isolated project's "default" security
    group) says whose it is."""
    if scope.owns(resource.name):
        return resource.name
    return f"{resource.kind} {resource.name or resource.id} of project {resource.project_id}"


def _admin_target(state: RunState) -> CloudTarget | None:
    try:
        return state.admin_target()
    except Exception as exc:  # no usable admin credentials: the member's project only
        LOG.warning("novastress: the final sweep has no admin credentials (%s)", exc)
        return None


class _LogLines:
    """A file for cleanup.py's progress lines: each becomes a log line of the run."""

    def write(self, text: str) -> None:
        for line in text.splitlines():
            if line.strip():
                LOG.info("novastress: final sweep: %s", line)

    def flush(self) -> None:
        pass
