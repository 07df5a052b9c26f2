"""Distributed runs (`--master`/`--worker`, `--processes`): an orderly end, whatever ends the run.

plugin.py already ships every worker's per-user tally, action records and leaks in Locust's
periodic worker reports, relays stop requests (`--stop-on-error`, `--max-runs`) to the
master, and starts the embedded cloud once, on the master, whose address reaches the workers
in the options Locust sends them at test start. This module adds what a distributed *end*
needs:

* **Workers clean up before the master sweeps.** Locust's `MasterRunner.quit()` (used by
  `-t`, `--max-runs` and `--stop-on-error`) fires the master's `test_stop` — and so the
  run-scoped sweep — without waiting for the workers: the sweep would delete servers that
  workers' users are still waiting on. The master first stops every worker (each user
  deletes what it made) and only then quits.
* **The final report arrives before "stopped".** A worker sends its report as it stops,
  ahead of its `client_stopped` message, so the summary counts each worker's last actions.
* A worker killed with SIGKILL sends nothing more: Locust marks it missing after its
  heartbeats stop, the master's stop stops waiting for it, and the sweep (sweep.py) removes
  its resources of every kind by the run's name prefix.
"""
from __future__ import annotations

import logging

from locust.runners import MasterRunner, WorkerRunner

LOG = logging.getLogger("novastress")


def register(events) -> None:
    """Wire the master's orderly quit and the workers' final report (once per Events object)."""
    if getattr(events, "_novastress_distributed_registered", False):
        return
    events._novastress_distributed_registered = True
    events.init.add_listener(_on_init)


def _on_init(environment, runner=None, **_kwargs) -> None:
    if isinstance(runner, MasterRunner):
        stop_workers_before_quit(runner)
    elif isinstance(runner, WorkerRunner):
        environment.events.test_stop.add_listener(
            lambda environment, **kw: send_final_report(environment.runner))


def stop_workers_before_quit(runner: MasterRunner) -> None:
    """Make `runner.quit()` stop the workers (and wait for them) before it quits them."""
    quit_now = runner.quit

    def quit_after_stop() -> None:
        if runner.state in ("spawning", "running") and runner.clients.all:
            # MasterRunner.stop() sends "stop", waits until every live worker's users are gone
            # (missing workers stop counting), then fires test_stop: the sweep comes last
            LOG.info("novastress: stopping %d workers before quitting", len(runner.clients.all))
            runner.stop()
        quit_now()

    runner.quit = quit_after_stop


def send_final_report(runner: WorkerRunner) -> None:
    """A worker's last report, sent as its users have stopped (their cleanup included)."""
    send = getattr(runner, "_send_stats", None)
    if send is None or getattr(runner, "client", None) is None:
        return
    try:
        send()
    except Exception as error:   # the master may be gone already; the next report would fail too
        LOG.debug("novastress: final report not sent: %s", error)
