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
    "errors": 0, "runtime_errors": 0, "units": 0, "_version": 0,
    "engine": 1,
    "data": 2,
    "worker": 3,  # runs in worker processes and containers: engine context + data shipping only
    "backends": 4,  # implement engine.backend.Backend over the worker protocol; never the API's objects
    "api": 5,
    # the SDK's module names (flyte.io, flyte.report ...) are the API too
    "checkpoint": 5, "context": 5, "durable": 5, "environ": 5, "io": 5, "report": 5, "secrets": 5, "traced": 5, "triggers": 5,
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
