"""The package's import graph, read with `ast`: no cycle, and no module importing one of a room
above its own. Imports inside functions count; imports under `if TYPE_CHECKING:` do not."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "novastress_locust"

# the rooms, lowest first: a module may import its own room's modules and those of rooms below
ROOMS = [
    ("foundations", {"options", "errors", "requestlog", "transport", "waiter", "greenlets", "inputs",
                     "credentials", "discovery", "summary", "sla", "faultspec", "findings", "repro"}),
    ("run state", {"state"}),
    ("cloud access", {"cloud", "client", "kinds", "phases"}),
    ("features", {"cloudprofile", "cleanup", "sweep", "invariants", "report", "watch", "webui", "faultplan",
                  "distributed", "compare"}),
    ("wiring", {"plugin"}),
    ("users", {"user"}),
    ("user classes", {"scenario", "storm", "actions"}),
]
# packages that stand alone: they import nothing else of novastress_locust
ALONE = {"fakecloud", "realnova"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports(name: str, path: Path, known: set[str]) -> dict[str, int]:
    """The package's modules `name` imports at run time -> the line of the first import."""
    tree = ast.parse(path.read_text())
    type_only = {id(node) for block in ast.walk(tree)
                 if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
                 for node in ast.walk(block)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: dict[str, int] = {}
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            submodules = [f"{module}.{alias.name}" for alias in node.names if f"{module}.{alias.name}" in known]
            # `from . import plugin` imports the module plugin, not the package
            targets = submodules if len(submodules) == len(node.names) else [module, *submodules]
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        for target in targets:
            if target in known and target != name:
                found.setdefault(target, node.lineno)
    return found


def graph() -> dict[str, dict[str, int]]:
    found = modules()
    return {name: imports(name, path, set(found)) for name, path in found.items()}


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in edges.get(node, {}):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return result


def room(name: str) -> int | None:
    """The room of a top-level module (actions.storm is in actions' room)."""
    top = name.split(".")[1] if name.count(".") else ""
    for number, (_title, members) in enumerate(ROOMS):
        if top in members:
            return number
    return None


def test_no_module_imports_another_in_a_circle():
    assert cycles(graph()) == []


def test_every_module_has_a_room_and_imports_only_its_room_and_below():
    upward = []
    for name, targets in graph().items():
        top = name.split(".")[1] if name.count(".") else ""
        if not top or top in ALONE:
            continue
        assert room(name) is not None, f"{name}: put it in a room of ROOMS (tests/test_layout.py and README's Layout)"
        for target, line in targets.items():
            if target == "novastress_locust":
                continue
            if room(target) is not None and room(target) > room(name):
                upward.append(f"{name}:{line} imports {target} ({ROOMS[room(target)][0]}, above "
                              f"{ROOMS[room(name)][0]})")
    assert upward == []


def test_the_standalone_packages_import_nothing_else_of_novastress():
    outside = [f"{name}:{line} imports {target}" for name, targets in graph().items()
               if name.split(".")[1:2] and name.split(".")[1] in ALONE
               for target, line in targets.items() if target.split(".")[1:2] != name.split(".")[1:2]]
    assert outside == []


def test_the_check_sees_a_cycle_and_an_upward_import():
    edges = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3}, "d": {"a": 4}}
    assert cycles(edges) == [["a", "b", "c"]]
    state, plugin = "novastress_locust.state", "novastress_locust.plugin"
    assert room(state) < room(plugin)
