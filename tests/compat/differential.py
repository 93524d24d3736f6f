"""Runs a Flyte-style program (``programs/*.py``) under flyte_nb or under the real SDK, the same way.

A program is what an SDK user writes: ``import flyte``, environments and tasks at module level,
and a ``main`` task (``ARGS`` are its inputs). The runner imports it, calls ``flyte.init()`` and
``flyte.run(main, *ARGS)``, and prints the outputs (or the error) as one JSON line. Under flyte_nb,
``flyte`` and its submodules are aliases of ``flyte_nb``'s; nothing in the program changes.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

PROGRAMS = pathlib.Path(__file__).parent / "programs"
ROOT = pathlib.Path(__file__).resolve().parents[2]

RUNNER = r"""
import importlib.util, json, sys
engine, path = sys.argv[1], sys.argv[2]
if engine == "flyte_nb":
    import flyte_nb, flyte_nb.errors, flyte_nb.io, flyte_nb.models, flyte_nb.notify, flyte_nb.report
    sys.modules.update({"flyte": flyte_nb, "flyte.errors": flyte_nb.errors, "flyte.io": flyte_nb.io,
                        "flyte.models": flyte_nb.models, "flyte.notify": flyte_nb.notify,
                        "flyte.report": flyte_nb.report})
import flyte
spec = importlib.util.spec_from_file_location("program", path)
program = importlib.util.module_from_spec(spec)
sys.modules["program"] = program
spec.loader.exec_module(program)
flyte.init()
try:
    run = flyte.run(program.main, *getattr(program, "ARGS", ()))
    out = run.outputs()
    if type(out).__name__ == "ActionOutputs":  # the SDK's local mode wraps outputs
        out = out[0] if len(out) == 1 else list(out)
    result = {"ok": out}
except BaseException as error:
    result = {"error": type(error).__name__, "code": getattr(error, "code", None)}
print("RESULT " + json.dumps(result, default=repr, sort_keys=True), flush=True)
"""


def run_program(python: str | os.PathLike[str], engine: str, name: str, home: pathlib.Path,
                env: dict[str, str] | None = None, timeout: float = 180) -> dict:
    """The program's outputs as JSON data: ``{"ok": value}`` or ``{"error": type, "code": ...}``."""
    home.mkdir(parents=True, exist_ok=True)
    variables = dict(os.environ, FLYTE_NB_HOME=str(home), **(env or {}))
    if engine == "flyte_nb":
        variables["PYTHONPATH"] = os.pathsep.join([str(ROOT), variables.get("PYTHONPATH", "")])
    else:
        variables.pop("PYTHONPATH", None)  # the SDK's venv must not see flyte_nb or this repo
    done = subprocess.run([str(python), "-c", RUNNER, engine, str(PROGRAMS / f"{name}.py")], capture_output=True,
                          text=True, timeout=timeout, env=variables, cwd=home)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise AssertionError(f"{name} under {engine} printed no result (exit {done.returncode}):\n"
                         f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def flyte_nb_python() -> str:
    return sys.executable
