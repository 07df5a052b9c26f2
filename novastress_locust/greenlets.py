"""Greenlets whose errors reach the caller, not the console.

    results = joined([spawn_kept(boot, name) for name in names], timeout=60)

gevent's hub prints a bare traceback for every greenlet that dies of an exception; a failed
API call in a burst of concurrent requests is the action's failure, counted and told in one
line by the action, so it is kept and raised again in the caller.
"""
from __future__ import annotations

from typing import Any, Callable

import gevent


def spawn_kept(function: Callable[..., Any], *args: Any) -> gevent.Greenlet:
    """A greenlet whose exception is kept for `joined()` to raise in the caller, instead of being
    printed as a bare traceback by gevent's hub."""
    def run() -> tuple[Any, Exception | None]:
        try:
            return function(*args), None
        except Exception as exc:  # noqa: BLE001 - raised again by joined()
            return None, exc
    return gevent.spawn(run)


def joined(greenlets: list[gevent.Greenlet], timeout: float) -> list[Any]:
    """Wait (bounded) for greenlets of `spawn_kept`; their values, or the first exception raised."""
    gevent.joinall(greenlets, timeout=timeout)
    outcomes = [greenlet.value or (None, None) for greenlet in greenlets]
    for _value, error in outcomes:
        if error is not None:
            raise error
    return [value for value, _error in outcomes]
