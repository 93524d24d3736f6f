"""The SDK's own example programs (flyteorg/flyte-sdk ``examples/``), run unchanged under both engines.

``python -m tests.compat.sdk_examples EXAMPLES_DIR [--only PATTERN] [--all]`` runs every example that is a
program (``if __name__ == "__main__"`` and a ``run`` call) whose imports exist in both
environments, as ``__main__``, under flyte_nb (``flyte`` and every ``flyte.*`` resolved to
``flyte_nb``'s modules) and under the real SDK in ``FLYTE_REF_VENV``, both in local mode
(``init_from_config`` becomes ``init()``: there is no cluster); the SDK only where flyte_nb fails,
unless ``--all``. It prints one line per example and
the causes of flyte_nb's failures, most frequent first, for examples the SDK's local mode runs.
Not a test: the examples change upstream; the README's compatibility table quotes its counts.
"""

from __future__ import annotations

import ast
import collections
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

from tests.compat.differential import ROOT

RUNNER = r"""
import importlib, importlib.abc, importlib.util, json, os, runpy, sys, traceback
engine, path = sys.argv[1], sys.argv[2]
if engine == "flyte_nb":
    import flyte_nb

    class Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, name, target=None, path=None):
            if name == "flyte" or name.startswith("flyte."):
                return importlib.util.spec_from_loader(name, self)
        def create_module(self, spec):
            return importlib.import_module("flyte_nb" + spec.name[len("flyte"):])
        def exec_module(self, module):
            pass

    sys.meta_path.insert(0, Alias())
import flyte
flyte.init_from_config = lambda *a, **k: flyte.init()
os.chdir(os.path.dirname(path))
sys.path.insert(0, os.path.dirname(path))
sys.argv = [path]
try:
    runpy.run_path(path, run_name="__main__")
    result = {"ok": True}
except SystemExit as error:
    result = {"ok": True} if error.code in (None, 0) else {"error": "SystemExit", "message": str(error.code)[:300]}
except BaseException as error:
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == path]
    result = {"error": type(error).__name__, "message": str(error)[:300], "line": frames[-1].lineno if frames else None}
print("RESULT " + json.dumps(result, default=repr), flush=True)
"""


def programs(root: pathlib.Path) -> list[pathlib.Path]:
    found = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(errors="replace")
        if "__main__" in text and re.search(r"\brun\(", text) and "import flyte" in text:
            found.append(path)
    return found


def imports(path: pathlib.Path) -> set[str]:
    """Top-level modules the example imports (its own folder's modules left out)."""
    try:
        tree = ast.parse(path.read_text(errors="replace"))
    except SyntaxError:
        return {"<syntax error>"}
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    local = {p.stem for p in path.parent.iterdir()} | {p.name for p in path.parent.iterdir() if p.is_dir()}
    return {n for n in names if n not in local and n not in ("flyte", "__future__")}


def missing(python: str, modules: set[str]) -> set[str]:
    if not modules:
        return set()
    code = ("import importlib.util, json, sys; print(json.dumps([m for m in sys.argv[1:] "
            "if importlib.util.find_spec(m) is None]))")
    done = subprocess.run([python, "-c", code, *sorted(modules)], capture_output=True, text=True)
    return set(json.loads(done.stdout or "[]"))


def run(python: str, engine: str, path: pathlib.Path, timeout: float) -> dict:
    home = tempfile.mkdtemp(prefix="flyte_nb-example-")
    env = dict(os.environ, FLYTE_NB_HOME=home, HOME=home)
    if engine == "flyte_nb":
        env["PYTHONPATH"] = str(ROOT)
    else:
        env.pop("PYTHONPATH", None)
    try:
        done = subprocess.run([python, "-c", RUNNER, engine, str(path)], capture_output=True, text=True,
                              timeout=timeout, env=env, cwd=home)
    except subprocess.TimeoutExpired:
        return {"error": "Timeout", "message": f"still running after {timeout:g}s"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    return {"error": "Crashed", "message": (done.stderr or done.stdout)[-300:]}


def cause(result: dict) -> str:
    message = re.sub(r"'[^']*\.py'|0x[0-9a-f]+|\d+(\.\d+)?", "…", result.get("message", ""))
    return f"{result['error']}: {message[:120]}"


def main(argv: list[str]) -> None:
    root = pathlib.Path(argv[0])
    only = argv[argv.index("--only") + 1] if "--only" in argv else ""
    reference = str(pathlib.Path(os.environ.get("FLYTE_REF_VENV", "/work/wt/flyte-ref")) / "bin" / "python")
    ours = sys.executable
    candidates = [p for p in programs(root) if only in str(p)]
    wanted = set().union(*(imports(p) for p in candidates)) if candidates else set()
    absent = missing(ours, wanted) | missing(reference, wanted)
    runnable = [p for p in candidates if not imports(p) & absent]
    print(f"{len(candidates)} example programs; {len(runnable)} with every import installed in both environments")

    def both(path: pathlib.Path) -> tuple[pathlib.Path, dict, dict]:
        mine = run(ours, "flyte_nb", path, 45)
        if "ok" in mine and "--all" not in argv:  # the SDK is asked only where flyte_nb fails (it is slow)
            return path, mine, {"skipped": True}
        return path, mine, run(reference, "flyte", path, 45)

    rows = []
    with ThreadPoolExecutor(2) as pool:
        for path, mine, theirs in pool.map(both, runnable):
            rows.append((path, mine, theirs))
            name = path.relative_to(root)
            sdk = "-  " if "skipped" in theirs else "ok " if "ok" in theirs else "bad"
            print(f"{'ok ' if 'ok' in mine else 'BAD'} sdk={sdk} {name}"
                  + ("" if "ok" in mine else f"  {cause(mine)}"), flush=True)
    ok = sum("ok" in mine for _, mine, _ in rows)
    gaps = sum("ok" not in mine and "ok" in theirs for _, mine, theirs in rows)
    print(f"\nflyte_nb runs {ok} of {len(rows)}; of the {len(rows) - ok} it does not, the SDK's local mode runs {gaps}"
          f" and fails {len(rows) - ok - gaps} too")
    causes = collections.Counter(cause(m) for _, m, t in rows if "ok" not in m and "ok" in t)
    print("\nflyte_nb failures where the SDK's local mode runs, by cause:")
    for text, n in causes.most_common():
        print(f"{n:4d}  {text}")


if __name__ == "__main__":
    main(sys.argv[1:])
