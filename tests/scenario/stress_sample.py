"""Tests marked for stress discovery and unit_test runs (used by tests/scenario)."""
from __future__ import annotations

import os
import unittest

from novastress_locust.discovery import stresstest


def _note(event: str) -> None:
    # the locust run writes each class set-up / tear-down here, to be counted by the test
    with open(os.environ["NOVASTRESS_SAMPLE_LOG"], "a") as log:
        log.write(event + "\n")


class _Counted(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.prepared = True
        _note(f"setup {cls.__name__}")

    @classmethod
    def tearDownClass(cls) -> None:
        _note(f"teardown {cls.__name__}")

    def test_run(self) -> None:
        assert self.prepared  # set by setUpClass on this very class (or its per-user copy)
        _note(f"run {type(self).__name__}")


class PerApplication(_Counted):
    pass


class PerProcess(_Counted):
    pass


class PerAction(_Counted):
    pass


class Failing(unittest.TestCase):
    def test_fails(self) -> None:
        self.assertEqual(1, 2, "the planted failure")


class Base(unittest.TestCase):
    @stresstest(class_setup_per="action")
    def test_base_only(self) -> None:
        pass

    @stresstest(allow_inheritance=True, types=("smoke",))
    def test_inherited_allowed(self) -> None:
        pass


class Child(Base):
    @stresstest(types=("smoke", "slow"))
    def test_child(self) -> None:
        pass


@stresstest(types=("slow",))
def test_function() -> None:
    pass
