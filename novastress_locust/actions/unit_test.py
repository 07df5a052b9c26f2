"""Run any test as a stress action (Tempest's tempest.stress.actions.unit_test.UnitTest).

    kwargs: {"test_method": "tests/stress/test_x.py::TestX::test_y", "class_setup_per": "process"}

`test_method` is a pytest node id (`path.py::Class::method`, `path.py::function`) or a
unittest dotted path (`package.module.Class.method`). `class_setup_per` says how often
the class's set-up (`setUpClass` / `setup_class`) runs:

* `application` — once per run (per Locust process), torn down at test stop;
* `process` — once per Locust user (Tempest's worker was a process), torn down at test stop;
* `action` — around every run.

A test reaches the cloud through `current_user()`: its calls are timed, carry the action's
request id, and what it creates is tracked and deleted like any action's. Test functions
that take arguments (pytest fixtures) are refused: nothing here can provide them.
"""
from __future__ import annotations

import importlib
import inspect
import unittest
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent.local
from gevent import GreenletExit
from locust.exception import StopUser
from gevent.lock import Semaphore

from ..cloudprofile import CloudProfile, Needs, Skip
from ..discovery import MARK, load_file
from ..state import run_state
from ..user import NovaUser
from . import stress_action

PER = ("application", "process", "action")
# Tempest stress-tagged tests that have an equivalent here (their classes do not exist outside Tempest)
TEMPEST_TESTS = {
    "tempest.scenario.test_network_advanced_server_ops.TestNetworkAdvancedServerOps."
    "test_server_connectivity_stop_start":
        "novastress_locust.actions.tempest_tests.TestNetworkAdvancedServerOps.test_server_connectivity_stop_start",
}
_running = gevent.local.local()


class TestFailed(Exception):
    """The test failed, errored or was skipped; str() is its last error line."""


def current_user() -> NovaUser:
    """The NovaUser running the test in this greenlet."""
    user = getattr(_running, "user", None)
    if user is None:
        raise RuntimeError("current_user() is only available inside a unit_test stress action")
    return user


@dataclass
class TestTarget:
    test_id: str
    owner: type | None          # the test class, or None for a function
    attribute: str              # the method or function name
    module: Any

    @property
    def short(self) -> str:
        return f"{self.owner.__name__}.{self.attribute}" if self.owner else self.attribute


def resolve(test_method: str) -> TestTarget:
    """The test a `test_method` names; ValueError with one line when it cannot be found."""
    test_method = TEMPEST_TESTS.get(test_method, test_method)
    try:
        if "::" in test_method:
            path_text, *parts = test_method.split("::")
            if not Path(path_text).resolve().is_file():
                raise ValueError(f"no test file {path_text}")
            module = load_file(Path(path_text).resolve())
        else:
            pieces = test_method.split(".")
            module, parts = None, []
            for cut in range(len(pieces) - 1, 0, -1):
                try:
                    module = importlib.import_module(".".join(pieces[:cut]))
                except ModuleNotFoundError as exc:
                    if exc.name and not ".".join(pieces[:cut]).startswith(exc.name):
                        raise  # the module exists but imports something missing
                    continue
                parts = pieces[cut:]
                break
            if module is None:
                raise ValueError(f"no importable module in {test_method!r}")
    except ValueError:
        raise
    except Exception as exc:
        raise ValueError(f"cannot import {test_method!r}: {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    if len(parts) not in (1, 2):
        raise ValueError(f"{test_method!r} must name a test function or Class.method")
    owner = getattr(module, parts[0], None) if len(parts) == 2 else None
    if len(parts) == 2 and not inspect.isclass(owner):
        raise ValueError(f"{test_method!r}: no class {parts[0]} in {module.__name__}")
    target = getattr(owner or module, parts[-1], None)
    if not callable(target):
        raise ValueError(f"{test_method!r}: no test {parts[-1]}")
    if owner is None:
        required = [p for p in inspect.signature(target).parameters.values()
                    if p.default is inspect.Parameter.empty and
                    p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        if required:
            raise ValueError(f"{test_method!r} takes arguments ({', '.join(p.name for p in required)}); "
                             f"fixtures cannot be provided to a stress action")
    return TestTarget(test_method, owner, parts[-1], module)


# -- class set-up bookkeeping, kept on the Locust Environment ------------------------------
@dataclass
class _ClassSetup:
    owner: type
    done: bool = False
    lock: Semaphore = field(default_factory=Semaphore)


def _setup_class(owner: type) -> None:
    for name in ("setUpClass", "setup_class"):
        hook = getattr(owner, name, None)
        if hook is not None:
            hook()
            return


def _teardown_class(owner: type) -> None:
    for name in ("tearDownClass", "teardown_class"):
        hook = getattr(owner, name, None)
        if hook is not None:
            try:
                hook()
            finally:
                if issubclass(owner, unittest.TestCase):
                    owner.doClassCleanups()
            return


def _registry(environment) -> dict[Any, _ClassSetup]:
    state = run_state(environment)
    registry = state.class_setups
    if registry is None:
        registry = state.class_setups = {}

        def teardown_all(**_kwargs) -> None:
            # leave_dirty_stack: leave what the classes built, as Tempest did
            if not environment.parsed_options.leave_dirty_stack:
                for setup in list(registry.values()):
                    if setup.done:
                        setup.done = False
                        try:
                            _teardown_class(setup.owner)
                        except Exception:  # one class's broken tear-down must not hide the others'
                            pass
            registry.clear()
        environment.events.test_stop.add_listener(teardown_all)
    return registry


def _owner_for(user: NovaUser, target: TestTarget, per: str) -> type:
    """The class to run on: the test class itself, or (per process) a subclass of the user's own,
    so that what setUpClass stores on the class is not shared between users."""
    if per != "process":
        return target.owner
    owned = user.kept.setdefault("unit_test_classes", {})
    if target.test_id not in owned:
        owned[target.test_id] = type(target.owner.__name__, (target.owner,), {"__module__": target.owner.__module__})
    return owned[target.test_id]


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "failed"


class _Result(unittest.TestResult):
    """unittest catches everything a test raises, even the GreenletExit that stops a Locust
    user: keep that one, to raise it again once the test has cleaned up."""

    interrupt: BaseException | None = None

    def addError(self, test, err) -> None:
        if issubclass(err[0], (GreenletExit, StopUser)):
            self.interrupt = err[1]
            return
        super().addError(test, err)


def _run_once(owner: type | None, target: TestTarget) -> None:
    if owner is None:
        getattr(target.module, target.attribute)()
        return
    if issubclass(owner, unittest.TestCase):
        result = _Result()
        owner(target.attribute).run(result)
        if result.interrupt is not None:
            raise result.interrupt
        problems = result.errors + result.failures + result.unexpectedSuccesses
        if problems:
            first = problems[0]
            raise TestFailed(_last_line(first[1]) if isinstance(first, tuple) else "unexpected success")
        if result.skipped:
            raise TestFailed(f"skipped: {result.skipped[0][1]}")
        return
    instance = owner()
    method = getattr(instance, target.attribute)
    if hasattr(instance, "setup_method"):
        instance.setup_method(method)
    try:
        method()
    finally:
        if hasattr(instance, "teardown_method"):
            instance.teardown_method(method)


def _validate(kwargs: dict) -> str | None:
    if kwargs.get("class_setup_per", "process") not in PER:
        return f"kwarg 'class_setup_per' must be one of {', '.join(PER)}, not {kwargs['class_setup_per']!r}"
    try:
        resolve(kwargs["test_method"])
    except ValueError as exc:
        return f"kwarg 'test_method': {exc}"
    return None


def _row_name(kwargs: dict) -> str:
    test_method = kwargs["test_method"]
    parts = test_method.split("::")[1:] if "::" in test_method else test_method.split(".")[-2:]
    return "unit_test " + ".".join(parts)


def _adapt(kwargs: dict, _options, profile: CloudProfile) -> tuple[dict | None, list[Skip]]:
    """A test marked `@stresstest(needs=...)` is left out on a cloud that lacks what it needs."""
    try:
        target = resolve(kwargs["test_method"])
    except (KeyError, ValueError):
        return kwargs, []               # _validate says what is wrong with it
    function = getattr(target.owner or target.module, target.attribute, None)
    needs = getattr(getattr(function, MARK, None), "needs", None)
    reason = profile.lacks(needs, target.short) if isinstance(needs, Needs) else None
    return (None, [Skip("test", target.short, reason)]) if reason else (kwargs, [])


@stress_action(tempest=("tempest.stress.actions.unit_test.UnitTest",), services=(), discoverable=False,
               validate=_validate, row_name=_row_name, adapt=_adapt)
def unit_test(user: NovaUser, *, test_method: str = inspect.Parameter.empty,  # type: ignore[assignment]
              class_setup_per: str = "process") -> None:
    """Run one test; its failure or error fails the action."""
    cache = user.kept.setdefault("unit_test_targets", {})
    target = cache.get(test_method)
    if target is None:
        target = cache[test_method] = resolve(test_method)
    _running.user = user
    try:
        if target.owner is None:
            _run_once(None, target)
            return
        owner = _owner_for(user, target, class_setup_per)
        if class_setup_per == "action":
            _setup_class(owner)
            try:
                _run_once(owner, target)
            finally:
                if not user.options.leave_dirty_stack:
                    _teardown_class(owner)
            return
        setup = _registry(user.environment).setdefault(owner, _ClassSetup(owner))
        with setup.lock:
            if not setup.done:
                _setup_class(owner)
                setup.done = True
        _run_once(owner, target)
    finally:
        _running.user = None
