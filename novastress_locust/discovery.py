"""`@stresstest` and discovery: Tempest's `run_stress.py -a [-T TYPE] [-i]`.

    from novastress_locust.discovery import stresstest

    class TestServers(unittest.TestCase):
        @stresstest(class_setup_per="process", types=("smoke",))
        def test_list(self): ...

`discover(modules, stress_type, call_inherited)` finds every marked action (ours, in
`novastress_locust.actions`) and every marked test function or method in the named
modules; `locustfiles/all.py` turns each into a User class. As in Tempest, a test method a
class only inherits is skipped unless `allow_inheritance=True` or `--call-inherited`.
The marks also become Locust tags ("stress", the name and every type), so `--tags` works.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from .errors import UserError

CLASS_SETUP_PER = ("application", "process", "action")
MARK = "__stresstest__"


class DiscoveryError(UserError):
    """A module to discover in cannot be used; str() is one line."""


@dataclass(frozen=True)
class StressMark:
    class_setup_per: str = "process"
    allow_inheritance: bool = False
    types: tuple[str, ...] = ()
    needs: Any = None          # cloudprofile.Needs: what the test needs of the cloud


def stresstest(function: Callable | None = None, *, class_setup_per: str = "process",
               allow_inheritance: bool = False, types: Iterable[str] = (), needs: Any = None) -> Any:
    """Mark an action or a test as a stress test (Tempest's `@stresstest`); `needs` (a
    cloudprofile.Needs) leaves it out, with one line, on a cloud that lacks what it needs.

        @stresstest(class_setup_per="action", types=("volume",), needs=Needs(services=("volume",)))
        def test_attach(self): ...
    """
    if class_setup_per not in CLASS_SETUP_PER:
        raise ValueError(f"class_setup_per must be one of {', '.join(CLASS_SETUP_PER)}, "
                         f"not {class_setup_per!r}")
    mark = StressMark(class_setup_per, allow_inheritance, tuple(types), needs)

    def apply(target: Callable) -> Callable:
        setattr(target, MARK, mark)
        # Locust's --tags / --exclude-tags filter tasks by this set
        tags = set(getattr(target, "locust_tag_set", set()))
        target.locust_tag_set = tags | {"stress", target.__name__, *mark.types}
        return target

    return apply(function) if function is not None else apply


def types_of(target: Any) -> set[str]:
    """Every type attribute of a test: our marks, testtools' `@attr(type=...)`, Locust tags."""
    mark = getattr(target, MARK, None)
    return {*(mark.types if mark is not None else ()), *(getattr(target, "__testtools_attrs", ()) or ()),
            *(getattr(target, "locust_tag_set", ()) or ())}


@dataclass
class Discovered:
    """One stress test found: an action of ours, or a test to run through `unit_test`."""

    name: str                      # the action's name, or the test's id
    action: str                    # "unit_test" for tests
    kwargs: dict = field(default_factory=dict)
    types: tuple[str, ...] = ()


def load_file(path: Path):
    """A .py file as the module `novastress_discovered_<stem>`, loaded once (unit_test finds it again)."""
    name = f"novastress_discovered_{path.stem}"
    if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(path):
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_module(name: str):
    """A module by dotted name, or a .py file by path."""
    try:
        if name.endswith(".py") or "/" in name:
            path = Path(name).resolve()
            if not path.is_file():
                raise DiscoveryError(f"--stress-module {name}: no such file")
            return load_file(path)
        return importlib.import_module(name)
    except DiscoveryError:
        raise
    except Exception as exc:  # an import error in the operator's module: one line, not a traceback
        raise DiscoveryError(f"--stress-module {name}: cannot import it: {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''}") from None


def _module_reference(module) -> str:
    """How unit_test finds the module again: its file path for file modules, else its name."""
    if module.__name__.startswith("novastress_discovered_"):
        return str(Path(module.__file__))
    return module.__name__


def discover_tests(module, stress_type: str | None = None, call_inherited: bool = False) -> list[Discovered]:
    """Every @stresstest test function and test method of a module (not our actions)."""
    marked: list[tuple[tuple[str, ...], Any]] = []      # (attribute[, method name]), the test
    for attribute, value in sorted(vars(module).items()):
        if getattr(value, "__module__", None) != module.__name__:
            continue  # imported from elsewhere: discovered where it is defined
        if inspect.isclass(value):
            for method_name in sorted(dir(value)):
                method = getattr(value, method_name, None)
                mark = getattr(method, MARK, None)
                # Tempest's rule: a method the class only inherits runs with -i or allow_inheritance
                if mark is not None and callable(method) and \
                        (method_name in value.__dict__ or call_inherited or mark.allow_inheritance):
                    marked.append(((attribute, method_name), method))
        elif callable(value) and getattr(value, MARK, None) is not None and getattr(value, "spec", None) is None:
            marked.append(((attribute,), value))
    reference = _module_reference(module)
    separator = "::" if reference.endswith(".py") else "."
    found: list[Discovered] = []
    for names, test in marked:
        if stress_type is None or stress_type in types_of(test):
            test_id = separator.join((reference, *names))
            found.append(Discovered(test_id, "unit_test", {"test_method": test_id,
                                                            "class_setup_per": getattr(test, MARK).class_setup_per},
                                    tuple(sorted(types_of(test)))))
    return found


def discover(modules: Iterable[str] = (), stress_type: str | None = None,
             call_inherited: bool = False, actions: Mapping[str, Any] | None = None) -> list[Discovered]:
    """The marked ones of `actions` (the action registry: name -> spec), then the marked tests of
    every named module."""
    def marked_actions(module=None) -> list[Discovered]:
        return [Discovered(name, name, {}, tuple(sorted(types_of(spec.task))))
                for name, spec in (actions or {}).items()
                if getattr(spec.task, MARK, None) is not None and (module is None or spec.task.__module__ == module)
                and (stress_type is None or stress_type in types_of(spec.task))]

    found = marked_actions()
    for module_name in modules:
        module = load_module(module_name)
        found += discover_tests(module, stress_type, call_inherited)
        # a module may also define actions with the action decorators: they are in `actions` now
        found += [action for action in marked_actions(module.__name__) if all(d.name != action.name for d in found)]
    return found
