"""What an OpenStack error says, in one line: the one function every client uses.

    error_message(response)   # "Instance 3f1c... could not be found."  (Nova, Keystone, Glance,
                              #  Cinder, Placement, Neutron's NeutronError) or the body's first line
    first_line(exc)           # an exception in one line (its type when it has no text)

Imports nothing: the load's clients, the sweep and `novastress-cleanup` share it.
"""
from __future__ import annotations


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
