"""Imports go one way: notebook/server → api → backends → worker → data → engine → errors.

Walks every module of flyte_nb with ``ast`` (function-level imports included, since a lazy import
is still a dependency) and fails on an import from a lower layer to a higher one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import flyte_nb

ROOT = Path(flyte_nb.__file__).parent

# rank of each top-level part of the package; a module may import its own rank or lower ones
LAYERS: dict[str, int] = {
    "errors": 0, "runtime_errors": 0, "units": 0, "_version": 0, "models": 0,
    "engine": 1,
    "data": 2,
    "worker": 3,  # runs in worker processes and containers: engine context + data shipping only
    "backends": 4,  # implement engine.backend.Backend over the worker protocol; never the API's objects
    "api": 5,
    # the SDK's module names (flyte.io, flyte.report ...) are the API too
    "checkpoint": 5, "context": 5, "durable": 5, "environ": 5, "io": 5, "report": 5, "secrets": 5, "traced": 5, "triggers": 5, "notify": 5,
    "notebook": 6, "server": 6,
    "__init__": 7,  # the package itself: nothing inside imports it
}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[tuple[int, str]]:
    relative = path.relative_to(ROOT.parent).with_suffix("")
    package = ".".join(relative.parts[:-1]) if relative.name != "__init__" else ".".join(relative.parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                names = [target] if node.module else [f"{target}.{a.name}" for a in node.names]
            else:
                names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [(node.lineno, name) for name in names if name == "flyte_nb" or name.startswith("flyte_nb.")]
    return found


def _module(path: Path) -> str:
    relative = path.relative_to(ROOT.parent).with_suffix("")
    return ".".join(relative.parts[:-1] if relative.name == "__init__" else relative.parts)


def test_every_part_of_the_package_has_a_layer():
    parts = {p.stem if p.is_file() else p.name for p in ROOT.iterdir()
             if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))}
    assert parts - set(LAYERS) == set(), "new top-level modules need a layer in LAYERS"


def test_imports_go_one_way():
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        source = _part(_module(path))
        for line, target in _imports(path):
            if target == "flyte_nb.__version__":
                target = "flyte_nb"
            into = _part(target) if target != "flyte_nb" else "__init__"
            if into != source and LAYERS[into] > LAYERS[source]:
                wrong.append(f"{path.relative_to(ROOT.parent)}:{line} ({source}) imports {target} ({into})")
    assert wrong == [], "imports from a lower layer to a higher one:\n" + "\n".join(wrong)


def _runtime_imports(path: Path) -> set[str]:
    """Modules of flyte_nb that ``path`` imports when it runs (``if TYPE_CHECKING:`` blocks left out)."""
    tree = ast.parse(path.read_text(), str(path))
    typing_only = {id(node) for block in ast.walk(tree)
                   if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
                   for node in ast.walk(block)}
    lines = {node.lineno for node in ast.walk(tree)
             if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in typing_only}
    return {name for line, name in _imports(path) if line in lines}


def test_no_module_imports_itself_through_others():
    """A cycle (api/run.py ↔ api/history.py was one) means two modules are one idea, or one is upside down.

    A package's ``__init__`` importing its own submodules does not count: that is how it re-exports them.
    """
    paths = {_module(path): path for path in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in paths.items():
        is_package = path.name == "__init__.py"
        found = set()
        for target in _runtime_imports(path):
            while target not in paths and "." in target:
                target = target.rsplit(".", 1)[0]  # `from .x import name`: the module x
            if target != module and target in paths and not (is_package and target.startswith(module + ".")):
                found.add(target)
        graph[module] = found

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph[todo.pop()] - seen:
                if nxt == goal:
                    return True
                seen.add(nxt)
                todo.append(nxt)
        return False

    cycles = sorted(f"{a} -> {b} -> ... -> {a}" for a in graph for b in graph[a] if reaches(b, a) and a < b)
    assert cycles == [], "import cycles:\n" + "\n".join(cycles)
