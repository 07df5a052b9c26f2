"""Fixtures of the real-cloud tier: the real Nova in the shape each test module asks for."""
from __future__ import annotations

import pytest

from novastress_locust.realnova import Shape

from realnova_stack import RealNova, Stacks, realnova_command


@pytest.fixture(scope="session")
def stacks():
    stacks = Stacks()
    yield stacks
    if not stacks.was_running:
        realnova_command("down", timeout=300)


@pytest.fixture(scope="module")
def realnova(stacks, request) -> RealNova:
    """The stack in the shape of the test module's SHAPE."""
    return stacks.up(getattr(request.module, "SHAPE", Shape()))
