"""A store that cannot be used is a clear error and is never modified; migrations keep data."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

import flyte_nb as flyte
from flyte_nb.data import recorder
from flyte_nb.data import store as store_module
from flyte_nb.engine.kernel import kernel
from flyte_nb.data.store import APPLICATION_ID, DB_NAME, SCHEMA_VERSION, Store, get_store

from .conftest import stored
from .store_tasks import pipeline


def fingerprint(home) -> str:
    return hashlib.sha256((home / DB_NAME).read_bytes()).hexdigest()


def forget_stores() -> None:
    """As a fresh kernel: no store object has been opened (and checked) yet."""
    recorder.flush()
    stores = kernel().part(store_module._Stores)
    for store in list(stores.values()):
        recorder.writer().forget(store)
    stores.clear()


@pytest.fixture
def recorded(home):
    run = flyte.run(pipeline, 2)
    run.outputs(timeout=30)
    forget_stores()
    with sqlite3.connect(home / DB_NAME) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file
    return run.name


def test_a_file_that_is_not_a_database_is_an_error_and_left_alone(home):
    (home / DB_NAME).write_bytes(b"this is not a database " * 200)
    before = fingerprint(home)
    with pytest.raises(flyte.StoreError, match=f"{DB_NAME} is damaged or not a database.*will not modify it") as caught:
        flyte.runs()
    assert str(home) in str(caught.value) and "FLYTE_NB_HOME" in str(caught.value)
    with pytest.raises(flyte.StoreError):
        flyte.get_run("anything")
    with pytest.warns(RuntimeWarning, match="goes ahead without being recorded"):
        run = flyte.run(pipeline, 2)
    assert run.outputs(timeout=30) == [100, 102]  # runs still work
    assert fingerprint(home) == before


def test_damaged_pages_are_an_error_not_silent_loss(home, recorded):
    path = home / DB_NAME
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 3 * page
    for offset in range(page, len(data), 97):
        data[offset] = (data[offset] + 1) % 256  # the header page stays intact: only reading finds the damage
    path.write_bytes(bytes(data))
    before = fingerprint(home)
    with pytest.raises(flyte.StoreError, match="is damaged or not a database .*malformed"):
        flyte.runs()
    with pytest.warns(RuntimeWarning, match="without being recorded"):
        flyte.run(pipeline, 1).outputs(timeout=30)
    assert fingerprint(home) == before


def test_a_store_from_a_newer_flyte_nb_is_refused(home, recorded):
    with sqlite3.connect(home / DB_NAME) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    before = fingerprint(home)
    with pytest.raises(flyte.StoreError, match=f"schema version {SCHEMA_VERSION + 1}, newer than this flyte_nb "
                                               f"understands \\({SCHEMA_VERSION}\\).*not modified"):
        flyte.runs()
    with pytest.warns(RuntimeWarning, match="newer than this flyte_nb"):
        flyte.run(pipeline, 1).outputs(timeout=30)
    assert fingerprint(home) == before


def test_another_programs_database_is_refused(home):
    with sqlite3.connect(home / DB_NAME) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        conn.execute("INSERT INTO invoices (total) VALUES (9.5)")
    before = fingerprint(home)
    with pytest.raises(flyte.StoreError, match="database of another program"):
        flyte.runs()
    assert fingerprint(home) == before


def test_a_damaged_value_file_is_an_error(home):
    from .store_tasks import env

    @env.task
    async def big() -> bytes:
        return bytes(range(256)) * 1000  # larger than INLINE_MAX: a file under blobs/

    run = flyte.run(big)
    value = run.outputs(timeout=30)
    forget_stores()
    record = stored(run.name)
    assert record.outputs() == value
    [blob] = [p for p in (home / "blobs").rglob("*") if p.is_file()]
    blob.write_bytes(blob.read_bytes()[:-1] + b"!")
    with pytest.raises(flyte.StoreError, match="is damaged"):
        record.outputs()
    blob.unlink()
    with pytest.raises(flyte.StoreError, match="missing or unreadable"):
        record.outputs()


def test_migrations_bring_an_older_store_up_and_keep_its_data(home, recorded, monkeypatch):
    step = "ALTER TABLE runs ADD COLUMN label TEXT;\nCREATE INDEX runs_label ON runs (label);"
    monkeypatch.setattr(store_module, "MIGRATIONS", [*store_module.MIGRATIONS, step])
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    conn = Store(home).connect()
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert conn.execute("SELECT name, label FROM runs").fetchall() == [(recorded, None)]
    conn.close()
    assert stored(recorded).outputs() == [100, 102]


def test_a_new_store_is_created_with_the_current_schema(home):
    conn = get_store().connect()
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"runs", "tasks", "actions", "attempts", "cache", "logs", "waits"}
    conn.close()


def test_a_version_1_store_is_migrated_with_its_runs_actions_and_cache(home):
    """A file as the first recorder (schema 1: keyed by run name, no tasks table) wrote it."""
    import pickle
    import time

    from flyte_nb.data.cache import task_info
    from flyte_nb.data.schema import MIGRATIONS

    from .store_tasks import cached_square

    code = task_info(cached_square.spec).code
    conn = sqlite3.connect(home / DB_NAME, isolation_level=None)
    for statement in store_module._statements(MIGRATIONS[0]):
        conn.execute(statement)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 1")
    now = time.time()
    conn.execute("INSERT INTO runs (name, driver, phase, created_at, started_at, ended_at, actions, counts) VALUES "
                 "('old-run', 'store_tests.pipeline', 'succeeded', ?, ?, ?, 2, '{\"succeeded\": 2}')", (now, now, now))
    for number, task, task_code, inputs, output in (
            (0, "store_tests.pipeline", "d" * 32, {"n": 1}, [100]),
            (1, "store_tests.cached_square", code, {"x": 0}, 0)):
        conn.execute("INSERT INTO actions (run, number, parent, task, backend, phase, attempts, started_at, ended_at, "
                     "code, inputs, outputs) VALUES ('old-run', ?, ?, ?, NULL, 'succeeded', ?, ?, ?, ?, ?, ?)",
                     (number, None if number == 0 else 0, task, 1 + number, now, now, task_code,
                      pickle.dumps(inputs), pickle.dumps(output)))
    conn.execute("INSERT INTO attempts VALUES ('old-run', 1, 1, 'failed', ?, ?, 'builtins.OSError', 'flaky', 'tb')",
                 (now, now))
    key = "k" * 32
    conn.execute("INSERT INTO cache (key, code, task, output, run, action, created_at) VALUES (?, ?, "
                 "'store_tests.cached_square', ?, 'old-run', 1, ?)", (key, code, pickle.dumps(0), now))
    conn.close()

    record = flyte.get_run("old-run")
    assert record.phase == "succeeded" and record.outputs() == [100] and record.inputs() == {"n": 1}
    square = record.action("a1")
    assert (square.task, square.parent_name, square.output(), square.inputs()) == (
        "store_tests.cached_square", "a0", 0, {"x": 0})
    assert [(a["number"], a["error_message"]) for a in square.attempt_history()] == [(1, "flaky")]
    with sqlite3.connect(home / DB_NAME) as check:
        assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
        assert check.execute("SELECT r.name, c.key FROM cache c JOIN runs r ON r.id = c.run").fetchall() == \
            [("old-run", key)]
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert flyte.run(pipeline, 1).outputs(timeout=30) == [100]  # and it records on
