"""Helpers for the run-store tests: child processes that share this test's FLYTE_NB_HOME."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def child_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["FLYTE_NB_HOME"] = str(home)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("FLYTE_NB_STORE", None)
    return env


def script(tmp_path: Path, code: str, name: str = "child.py") -> Path:
    path = tmp_path / name
    path.write_text("import sys\nsys.path.insert(0, %r)\n" % str(ROOT) + textwrap.dedent(code))
    return path


def start(path: Path, home: Path, *args: str) -> subprocess.Popen:
    """A child Python process (a stand-in for a kernel) writing to ``home``."""
    return subprocess.Popen([sys.executable, str(path), *args], env=child_env(home), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def run_child(tmp_path: Path, home: Path, code: str, timeout: float = 60) -> dict:
    """Run a child to the end; it prints one JSON object on its last line, which is returned."""
    done = subprocess.run([sys.executable, str(script(tmp_path, code))], env=child_env(home),
                          capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"child failed:\n{done.stdout}\n{done.stderr}"
    assert_quiet(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def assert_quiet(stderr: str) -> None:
    """Recording problems are logged, not raised (they must never break a run): fail on them here."""
    assert "flyte_nb:" not in stderr and "Traceback" not in stderr, f"the child logged problems:\n{stderr}"


@pytest.fixture
def home(flyte_home: Path) -> Path:
    flyte_home.mkdir(parents=True, exist_ok=True)
    return flyte_home


def stored(name: str):
    """The store's record of a run, even one this kernel holds live (``get_run`` returns the live handle)."""
    from flyte_nb.api import history
    from flyte_nb.data.store import get_store

    history._store()  # commit what is pending, mark dead kernels' runs
    [row] = history._rows(get_store(), "SELECT * FROM runs WHERE name = ?", (name,))
    return history.StoredRun(get_store(), row)
