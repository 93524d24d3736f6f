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
    from flyte_nb.api import history, stored
    from flyte_nb.data.store import get_store

    stored.open_store()  # commit what is pending, mark dead kernels' runs
    [row] = stored.rows_of(get_store(), "SELECT * FROM runs WHERE name = ?", (name,))
    return history.StoredRun(get_store(), row)


@pytest.fixture
def small_disk(tmp_path, request):
    """A folder on its own small tmpfs (8 MB, or the size given by indirect parametrisation): a disk
    that can really fill. Unmounted afterwards."""
    where = tmp_path / "small-disk"
    where.mkdir()
    size = getattr(request, "param", "8m")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount a tmpfs for the disk-full tests: {mounted.stderr.strip()}")
        pytest.skip(f"cannot mount a tmpfs (needs root): {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(folder: Path) -> Path:
    """Take every free block of ``folder``'s file system with one file; remove it to give the space back."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for size in (1 << 20, 65536, 4096, 512, 1):  # then the last partial blocks
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


def referenced_digests(conn) -> set[str]:
    """Every value file a row of the store names."""
    found: set[str] = set()
    for table, column in (("actions", "inputs"), ("actions", "outputs"), ("actions", "error_blob"),
                          ("runs", "error_blob"), ("cache", "output")):
        found |= {row[0] for row in conn.execute(f"SELECT {column} FROM {table} WHERE typeof({column}) = 'text'")}
    return found


def value_files(home: Path) -> list[Path]:
    return sorted(p for p in (home / "blobs").rglob("*") if p.is_file()) if (home / "blobs").exists() else []
