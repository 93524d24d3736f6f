"""The real Flyte SDK, from PyPI, in a venv of its own: the reference for the differential tests.

``reference_python()`` creates the venv on first use (``FLYTE_REF_VENV``, default a folder in the
temp dir) with ``pip install flyte==REFERENCE_VERSION``. When that cannot be installed (PyPI out
of reach) the calling test is skipped with the reason, except under ``CI=true`` where it fails.
``python -m tests.compat.reference --write`` regenerates ``sdk_names.json`` from that venv.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import tempfile

import pytest

HERE = pathlib.Path(__file__).parent
NAMES_FILE = HERE / "sdk_names.json"
REFERENCE_VERSION = json.loads(NAMES_FILE.read_text())["version"] if NAMES_FILE.exists() else "2.12.1"
MODULES = ("flyte", "flyte.errors", "flyte.io", "flyte.notify", "flyte.report")

_LIST_NAMES = """
import importlib, inspect, json, sys
import flyte
out = {"version": flyte.__version__, "modules": {}}
for name in sys.argv[1:]:
    module = importlib.import_module(name)
    names = getattr(module, "__all__", None)
    if names is None:  # flyte.errors has no __all__: what it defines, not what it imports
        names = [n for n, v in vars(module).items() if not n.startswith("_")
                 and getattr(v, "__module__", name) == name and not inspect.ismodule(v)]
    out["modules"][name] = sorted(names)
print(json.dumps(out))
"""


def venv_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("FLYTE_REF_VENV") or pathlib.Path(tempfile.gettempdir()) / "flyte_nb-flyte-ref")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"the reference Flyte SDK is needed under CI: {reason}")
    pytest.skip(f"reference Flyte SDK unavailable (PyPI unreachable?): {reason}")


def reference_python() -> pathlib.Path:
    """The reference venv's python, with ``flyte`` importable; made (once) if missing."""
    folder = venv_dir()
    python = folder / "bin" / "python"
    if python.exists() and subprocess.run([python, "-c", "import flyte"], capture_output=True).returncode == 0:
        return python
    base = getattr(sys, "_base_executable", None) or sys.executable
    made = subprocess.run([base, "-m", "venv", str(folder)], capture_output=True, text=True)
    if made.returncode != 0:
        _unavailable(f"cannot create a venv at {folder}: {made.stderr.strip().splitlines()[-1:]}")
    installed = subprocess.run([python, "-m", "pip", "install", "-q", f"flyte=={REFERENCE_VERSION}"],
                               capture_output=True, text=True, timeout=900)
    if installed.returncode != 0:
        last = (installed.stderr.strip().splitlines() or ["pip failed"])[-1]
        _unavailable(f"pip install flyte=={REFERENCE_VERSION} failed: {last}")
    return python


def live_names(python: pathlib.Path) -> dict:
    done = subprocess.run([python, "-c", _LIST_NAMES, *MODULES], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"listing the SDK's names failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    NAMES_FILE.write_text(json.dumps(live_names(reference_python()), indent=1, sort_keys=True) + "\n")
    print(f"wrote {NAMES_FILE}")
