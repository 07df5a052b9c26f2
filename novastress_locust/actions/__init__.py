"""Stress actions, one module per family; each is a Locust task `action(user)` timed as one ACTION.

    from novastress_locust.actions.servers import server_create_destroy

    class ServerCreateDestroy(NovaUser):
        tasks = [server_create_destroy]

An action's keyword-only parameters are its kwargs (Tempest's `kwargs` of a scenario entry):
a user class gives them in its `kwargs` dict, unknown or mistyped ones are refused before
any load. Every action is registered by name in `REGISTRY`, with the Tempest class paths
that mean it, so Tempest's JSON scenario files run unchanged.

    @stress_action(tempest=("tempest.stress.actions.x.XTest",), types=("compute",))
    def x(user, *, new_server: bool = False) -> None: ...

Each action says what it needs of the cloud: the catalog services (`services=`), and in
`needs=` two flavors, floating IPs, compute hosts, admin credentials, a compute microversion.
Where the cloud profile does not meet them the action is left out of the run with one line
(cloudprofile.py); `adapt=` drops the parts of an action's kwargs that do not fit (a bounce's
resize steps on a cloud with one flavor).

    @stress_action(services=("compute", "network"), needs=Needs(floating_ip=True))
"""
from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from ..cloudprofile import Adapt, Needs, Skip
from ..discovery import stresstest
from ..user import NovaUser, action

# the modules that define actions; imported on first look-up of REGISTRY
FAMILIES = ("servers", "volumes", "floating", "lifecycle", "unit_test", "storm")
_MISSING = inspect.Parameter.empty


@dataclass(frozen=True)
class ActionSpec:
    name: str
    task: Callable[[NovaUser], Any]
    defaults: dict[str, Any]            # kwarg -> default (_MISSING: required)
    tempest: tuple[str, ...]
    needs: Needs                        # catalog services and what else of the cloud it needs
    validate: Callable[[dict], str | None] | None = None
    adapt: Adapt | None = None          # fits its kwargs to the cloud (cloudprofile.fit)

    def check(self, kwargs: Any) -> str | None:
        """What is wrong with these kwargs, in a few words; None when they are right."""
        if not isinstance(kwargs, dict):
            return f"kwargs must be a mapping, not {type(kwargs).__name__}"
        unknown = sorted(set(kwargs) - set(self.defaults))
        if unknown:
            known = ", ".join(sorted(self.defaults)) or "none"
            return f"unknown kwarg {', '.join(map(repr, unknown))} (known: {known})"
        missing = sorted(k for k, v in self.defaults.items() if v is _MISSING and k not in kwargs)
        if missing:
            return f"kwarg {', '.join(map(repr, missing))} is required"
        for key, value in kwargs.items():
            wrong = _type_error(self.defaults[key], value)
            if wrong:
                return f"kwarg {key!r} {wrong}"
        return self.validate(kwargs) if self.validate else None

    def arguments(self, kwargs: dict | None) -> dict[str, Any]:
        merged = {k: v for k, v in self.defaults.items() if v is not _MISSING}
        merged.update(kwargs or {})
        return merged


def _type_error(default: Any, value: Any) -> str | None:
    if default is _MISSING or default is None:
        return None
    if isinstance(default, bool):
        return None if isinstance(value, bool) else f"must be true or false, not {value!r}"
    if isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                (isinstance(default, int) and not isinstance(default, bool) and isinstance(value, float)
                 and not value.is_integer()):
            return f"must be a number, not {value!r}"
        return None
    if isinstance(default, (list, tuple)):
        return None if isinstance(value, (list, tuple)) else f"must be a list, not {value!r}"
    if isinstance(default, dict):
        return None if isinstance(value, dict) else f"must be a mapping, not {value!r}"
    if isinstance(default, str):
        return None if isinstance(value, str) else f"must be a string, not {value!r}"
    return None


class _Registry(Mapping):
    """name -> ActionSpec; the action modules are imported on first use."""

    def __init__(self) -> None:
        self.specs: dict[str, ActionSpec] = {}
        self.loaded = False

    def _loaded(self) -> dict[str, ActionSpec]:
        if not self.loaded:
            self.loaded = True
            for family in FAMILIES:
                importlib.import_module(f"{__name__}.{family}")
        return self.specs

    def __getitem__(self, key: str) -> ActionSpec:
        return self._loaded()[key]

    def __iter__(self):
        return iter(self._loaded())

    def __len__(self) -> int:
        return len(self._loaded())


REGISTRY: _Registry = _Registry()


def stress_action(function: Callable | None = None, *, tempest: Iterable[str] = (),
                  services: Iterable[str] = ("compute",), types: Iterable[str] = (),
                  discoverable: bool = True, validate: Callable[[dict], str | None] | None = None,
                  row_name: Callable[[dict], str] | None = None, needs: Needs = Needs(),
                  adapt: Adapt | None = None) -> Any:
    """Register `function(user, **kwargs)` as the action named after it, marked @stresstest.

    `services` and `needs` say what it needs of the cloud, `adapt` fits its kwargs to it;
    `row_name(kwargs)` names its ACTION row when the name depends on the kwargs (unit_test).
    """
    def wrap(function: Callable) -> Callable[[NovaUser], Any]:
        signature = inspect.signature(function)
        defaults = {name: parameter.default for name, parameter in signature.parameters.items()
                    if parameter.kind is inspect.Parameter.KEYWORD_ONLY}

        def task(user: NovaUser) -> Any:
            arguments = spec.arguments(getattr(user, "kwargs", None))
            with user.action(row_name(arguments) if row_name else function.__name__):
                return function(user, **arguments)

        task.__name__, task.__doc__ = function.__name__, function.__doc__
        task.__module__, task.__qualname__ = function.__module__, function.__qualname__
        spec = ActionSpec(function.__name__, task, defaults, tuple(tempest), needs.with_services(tuple(services)),
                          validate, adapt)
        task.spec = spec
        task.needs = spec.needs
        if discoverable:
            stresstest(task, types=tuple(types))
        REGISTRY.specs[spec.name] = spec
        return task

    return wrap(function) if function is not None else wrap


def find(name: str) -> ActionSpec | None:
    """An action by our name or by a Tempest class path (`tempest.stress.actions...`)."""
    spec = REGISTRY.get(name)
    if spec is not None:
        return spec
    return next((spec for spec in REGISTRY.values() if name in spec.tempest), None)


__all__ = ["action", "stress_action", "REGISTRY", "ActionSpec", "find", "Needs", "Skip"]
