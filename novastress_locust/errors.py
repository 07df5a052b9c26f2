"""Errors in one line: what an OpenStack error says, and what the operator must fix.

    error_message(response)   # "Instance 3f1c... could not be found."  (Nova, Keystone, Glance,
                              #  Cinder, Placement, Neutron's NeutronError) or the body's first line
    first_line(exc)           # an exception in one line (its type when it has no text)
    raise UserError("--log-check-interval must be above 0, e.g. 5")
    exit_with("novastress", exc)  # prints "novastress: <one line>" to stderr, exit code 2

Imports nothing: the load's clients, the sweep and `novastress-cleanup` share it.
"""
from __future__ import annotations

import sys
from typing import NoReturn


class UserError(Exception):
    """Something the operator can fix (a file, an option, credentials, a module to load): str()
    is one line naming what is wrong and how to fix it. Each input has its subclass; a command
    that cannot go on because of one ends through exit_with (exit code 2)."""


def exit_with(program: str, problem: BaseException | str) -> NoReturn:
    """The one way a command stops on a problem the operator must fix: one line, exit code 2."""
    print(f"{program}: {first_line(problem) if isinstance(problem, BaseException) else problem}",
          file=sys.stderr, flush=True)
    raise SystemExit(2)


def error_message(response) -> str:
    """The message of an OpenStack error body, one line."""
    try:
        body = response.json()
    except ValueError:
        lines = response.text.strip().splitlines()
        return lines[0][:200] if lines else (response.reason or "")
    if isinstance(body, dict):
        for value in body.values():
            if isinstance(value, dict) and "message" in value:
                return str(value["message"]).splitlines()[0][:300]
        for key in ("message", "NeutronError"):
            if key in body:
                value = body[key]
                return str(value.get("message") if isinstance(value, dict) else value).splitlines()[0][:300]
        # Placement and Glance: {"errors": [{"title": ..., "detail": ...}]}
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            return str(first.get("detail") or first.get("title") or first).splitlines()[0][:300]
    return str(body)[:200]


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
