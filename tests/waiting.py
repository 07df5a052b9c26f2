"""Bounded polling for tests: wait until something is true, never longer than a timeout."""
from __future__ import annotations

import time
from typing import Any, Callable


def wait_until(check: Callable[[], Any], what: str = "the condition", timeout: float = 15.0,
               interval: float = 0.02) -> Any:
    """Call `check()` until it returns something truthy and return that; AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(interval)
    raise AssertionError(f"{what} did not happen within {timeout} s")
