"""The commit process: it commits the writer's cycles, records values as the thread would, and a
lost process loses nothing (the writer thread commits the cycle itself)."""

from __future__ import annotations

import logging
import os
import pickle
import signal
import sqlite3

import pytest

import flyte_nb as flyte
from flyte_nb.data import recorder
from flyte_nb.data.pickling import for_store
from flyte_nb.data.store import DB_NAME, INLINE_MAX, get_store

env = flyte.TaskEnvironment("committer_tests")
VALUES = [7, "says __main__ in it", "x" * (INLINE_MAX + 10), (1, ("two", 3.0)), 2 + 3j, None, b"\x00bytes"]


@env.task
async def pick(i: int) -> object:
    return VALUES[i % len(VALUES)]


@env.task
async def fan(n: int) -> int:
    count = 0
    async for _ in flyte.map.aio(pick, range(n), concurrency=20):
        count += 1
    return count


def _rows(home, name: str) -> dict[int, tuple[bytes | str, bytes | str]]:
    """Each child action's recorded (inputs, outputs), by map index."""
    conn = sqlite3.connect(home / DB_NAME)
    try:
        return {index: (inputs, outputs) for index, inputs, outputs in conn.execute(
            "SELECT map_index, inputs, outputs FROM actions WHERE parent IS NOT NULL AND phase = 'succeeded' "
            "AND run = (SELECT id FROM runs WHERE name = ?)", (name,))}
    finally:
        conn.close()


@pytest.fixture
def debug_log(caplog):
    caplog.set_level(logging.DEBUG, logger="flyte_nb.store")
    return caplog


def test_the_commit_process_records_values_exactly_as_the_thread_would(home, debug_log):
    run = flyte.run(fan, 70)
    assert run.outputs() == 70
    recorder.flush()
    writer = recorder.writer()
    assert writer._process is not None and writer._process._child is not None  # it was started and is kept
    assert not [r for r in debug_log.records if "did not commit" in r.getMessage()]  # ... and it committed
    store = get_store()
    rows = _rows(home, run.name)
    assert sorted(rows) == list(range(70))
    for index, (inputs, outputs) in rows.items():
        value = VALUES[index % len(VALUES)]
        assert store.unpack(inputs) == for_store({"i": index})
        assert store.unpack(outputs) == for_store(value)  # the same bytes, cloudpickle's for "__main__" too
        assert pickle.loads(store.unpack(outputs)) == value
    assert isinstance(rows[2][1], str)  # too large for its row: a value file, named by its digest


def test_a_commit_process_that_dies_mid_transaction_loses_nothing(home, monkeypatch, debug_log):
    assert flyte.run(fan, 10).outputs() == 10
    recorder.flush()
    writer = recorder.writer()
    first = writer._process._child
    locked = type(writer)._locked
    killed = []

    def die_once(self) -> None:  # the child holds the lock and waits for the ops: it is killed there
        locked(self)
        if not killed:
            killed.append(first.pid)
            os.kill(first.pid, signal.SIGKILL)
            first.wait(10)

    monkeypatch.setattr(type(writer), "_locked", die_once)
    run = flyte.run(fan, 300)
    assert run.outputs() == 300
    recorder.flush()
    assert killed and len(_rows(home, run.name)) == 300
    assert [r for r in debug_log.records if "did not commit" in r.getMessage()]  # the thread did that cycle
    assert flyte.run(fan, 5).outputs() == 5  # the next cycles have a process again
    recorder.flush()
    assert writer._process is not None and writer._process._child.pid != first.pid
    assert writer._process_failures == 0


def test_with_the_process_off_the_writer_thread_commits(home, monkeypatch, debug_log):
    monkeypatch.setenv("FLYTE_NB_STORE_PROCESS", "off")
    run = flyte.run(fan, 40)
    assert run.outputs() == 40
    recorder.flush()
    assert len(_rows(home, run.name)) == 40
