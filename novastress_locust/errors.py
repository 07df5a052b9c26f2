"""Errors in one line: what an OpenStack error says, and what the operator must fix.

    error_message(response)   # "Instance 3f1c... could not be found."  (Nova, Keystone, Glance,
                              #  Cinder, Placement, Neutron's NeutronError) or the body's first line
    first_line(exc)           # an exception in one line (its type when it has no text)
    raise UserError("--log-check-interval must be above 0, e.g. 5")
    exit_with("novastress", exc)  # prints "novastress: <one line>" to stderr, exit code 2

Imports nothing: the load's clients, the sweep and `novastress-cleanup` share it.
"""
from __future__ import annotations

import re
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
        return _text_message(response.text) or response.reason or ""
    if isinstance(body, dict):
        if "message" in body and "title" in body:      # webob's JSON error: {"message", "code", "title"}
            return _text_message(str(body["message"])) or str(body["title"])
        for value in body.values():
            if isinstance(value, dict) and "message" in value:
                return _one_line(str(value["message"]))
        for key in ("message", "NeutronError"):
            if key in body:
                value = body[key]
                return _one_line(str(value.get("message") if isinstance(value, dict) else value))
        # Placement and Glance: {"errors": [{"title": ..., "detail": ...}]}
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            return str(first.get("detail") or first.get("title") or first).splitlines()[0][:300]
    return str(body)[:200]


def _one_line(message: str) -> str:
    """A message's lines joined: Nova's 500 names the exception on its second line
    ("Unexpected API Error. ... if possible.\n<class 'nova.exception.InstanceNotFound'>")."""
    return " ".join(line.strip() for line in message.splitlines() if line.strip())[:300]


def _text_message(text: str) -> str:
    """The first line that says something of a text error: webob's HTML page (Glance answers
    one to a client that sends no Accept: JSON) is read for its explanation, its plain text and
    its <br /> tags dropped, the status line it starts with skipped."""
    text = text.strip()
    if text.startswith("<"):
        page = re.search(r"</h1>(.*?)</body>", text, re.S)
        text = page.group(1) if page else text
    lines = [line.strip() for line in re.sub(r"<[^>]+>", "\n", text).splitlines() if line.strip()]
    if len(lines) > 1 and re.match(r"\d{3} \w", lines[0]):
        lines = lines[1:]
    return lines[0][:300] if lines else ""


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
