"""What actions print is recorded: visible while they run, complete once they end."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

import flyte_nb as flyte
from flyte_nb.data.store import DB_NAME

env = flyte.TaskEnvironment("logs_tests")
release = threading.Event()


@env.task
async def chatty(i: int) -> int:
    print(f"start {i}")
    while not release.is_set():
        await asyncio.sleep(0.01)
    print(f"end {i}")
    return i


@env.task
async def quiet(i: int) -> int:
    return i


@env.task
async def main() -> list:
    return [await chatty(1), *[await quiet(i) for i in range(3)]]


def _logs(home) -> dict[int, str]:
    with sqlite3.connect(home / DB_NAME) as conn:
        try:
            return dict(conn.execute("SELECT action, text FROM logs"))
        except sqlite3.OperationalError as error:  # the writer thread is creating the store right now
            assert "no such table" in str(error)
            return {}


def test_logs_are_recorded_while_running_and_when_done(flyte_home):
    release.clear()
    run = flyte.run(main)
    deadline = time.monotonic() + 10
    while (flyte_home / DB_NAME).exists() is False or _logs(flyte_home) != {1: "start 1\n"}:
        assert time.monotonic() < deadline, "the running action's output never reached the store"
        time.sleep(0.05)
    release.set()
    assert run.outputs(timeout=10) == [1, 0, 1, 2]
    flyte.runs()  # reads of history commit what is pending first
    assert _logs(flyte_home) == {1: "start 1\nend 1\n"}  # quiet actions leave no rows
