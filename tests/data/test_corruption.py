"""A store file damaged at random offsets: every read is a result or a clear StoreError, never a crash or hang.

A real store (runs with groups, a cache, a failure, logs) is recorded once; each example copies
it, overwrites a few random bytes (or cuts it short) and reads it back the ways users and the
Runs panel do: ``flyte.runs()``, ``get_run(...).actions``, and every server query over every run
and action. Example counts are printed in the summary (``-s`` shows them).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flyte_nb as flyte
from flyte_nb.data.home import set_home_dir
from flyte_nb.data.store import DB_NAME, Store
from flyte_nb.errors import RunNotFoundError, StoreError
from flyte_nb.server import queries
from flyte_nb.server.handlers import Reader

from .conftest import run_child

READ_WITHIN = 30.0  # seconds for all the reads of one damaged copy (they take milliseconds)
EXAMPLES = 150
RANDOM = bool(os.environ.get("FLYTE_NB_FUZZ_RANDOM"))  # new examples each run; by default the same ones
RECORD = """
import json, pathlib
import flyte_nb as flyte
from tests.data.store_tasks import home, pipeline, slow_map
flyte.run(pipeline, 6).wait(quiet=True)
(home() / "fail-2").write_text("")
failed = flyte.run(pipeline, 4)
failed.wait(quiet=True)
flyte.run(slow_map, 4, 4).wait(quiet=True)
print(json.dumps({"phase": failed.phase}))
"""
outcomes: dict[str, int] = {}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """A recorded store, checkpointed into its one file."""
    base = tmp_path_factory.mktemp("pristine")
    home = base / "home"
    home.mkdir()
    assert run_child(base, home, RECORD) == {"phase": "failed"}
    conn = sqlite3.connect(home / DB_NAME)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return home / DB_NAME


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    print("\ncorrupted store copies read:", ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())),
          f"({sum(outcomes.values())} in all)")


def _read_everything(home: Path) -> None:
    """Read the store every way there is; anything but a StoreError escapes."""
    set_home_dir(home)
    try:
        for run in flyte.runs(limit=None):
            flyte.get_run(run.name).actions
        reader = Reader(str(home), Store(home))
        paths = queries.Paths(str(home))
        for summary in reader.read(queries.list_runs, paths, limit=500)["runs"]:
            name = summary["name"]
            reader.read(queries.run_detail, paths, name)
            page = reader.read(queries.list_actions, name, limit=500) or {"actions": []}
            for action in page["actions"][:40]:
                reader.read(queries.action_detail, reader.store, name, action["number"])
    finally:
        set_home_dir(None)


def _damage(path: Path, data: st.DataObject) -> str:
    """Overwrite 1-8 spots (offsets uniform over the file: hypothesis' own integers favour the header), or cut."""
    size = path.stat().st_size
    spots = data.draw(st.randoms(use_true_random=False), label="where")
    with open(path, "r+b") as file:
        if data.draw(st.integers(0, 9), label="kind") == 0:
            file.truncate(spots.randrange(size))
            return "cut short"
        for _ in range(data.draw(st.integers(1, 8), label="spots")):
            file.seek(spots.randrange(size))
            file.write(data.draw(st.binary(min_size=1, max_size=16), label="bytes"))
    return "overwritten"


@settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=not RANDOM,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_a_store_damaged_anywhere_reads_or_says_it_is_damaged(pristine, tmp_path_factory, data):
    home = tmp_path_factory.mktemp("damaged")
    shutil.copy(pristine, home / DB_NAME)
    how = _damage(home / DB_NAME, data)
    ended: list[BaseException | None] = []

    def read() -> None:
        try:
            _read_everything(home)
        except BaseException as error:  # noqa: BLE001 - judged below, with its traceback
            ended.append(error)
        else:
            ended.append(None)

    reading = threading.Thread(target=read, daemon=True)
    reading.start()
    reading.join(READ_WITHIN)
    assert not reading.is_alive(), f"reading a damaged store ({how}) hung"
    [error] = ended
    if error is not None and not isinstance(error, (StoreError, RunNotFoundError)):  # the latter: damage hit a
        raise error  # run's name in its row, so that runs() lists a name its index does not know
    if error is not None:
        text = str(error)
        assert "run store" in text and "\n" not in text and len(text) < 600, text  # one clear line
    outcome = f"{how}: {type(error).__name__ if error else 'read'}"
    outcomes[outcome] = outcomes.get(outcome, 0) + 1
