"""Values kept by reference on the engine thread are recorded exactly as if pickled at once."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest

import flyte_nb as flyte
from flyte_nb.data.cache import encode_inputs
from flyte_nb.data.pickling import for_store as dumps
from flyte_nb.data.snapshot import keepable, keepable_args
from flyte_nb.data.store import DB_NAME, get_store

env = flyte.TaskEnvironment("snapshot_tests")


@env.task
async def echo(x):
    return x


@env.task
async def pair(a, b=2):
    return (a, b)


@env.task
async def star(*xs):
    return xs


@env.task
async def grow(items: list) -> list:
    items.append("grown")
    return items


VALUES = [0, -7, 2**80, 1.5, float("inf"), None, True, "text", "__main__", b"\x00bytes", complex(1, 2), (),
          (1, ("a", 2.5)), [1, 2], {"k": [3]}, (1, [2]), frozenset({1}), b"large" * 10_000]  # the last: a value file
MAPPED = VALUES[:8] + VALUES[-1:]


@pytest.mark.parametrize("value, kept", [(1, True), ("s", True), ((1, (b"x", None)), True), ([1], False),
                                         ({"a": 1}, False), ((1, [2]), False), (frozenset(), False)])
def test_only_values_that_cannot_change_are_kept(value, kept):
    assert keepable(value) is kept
    assert keepable_args((value,), {}) is kept
    assert not keepable_args((value,), {"k": 1})  # keyword arguments are always pickled at once


@env.task
async def driver() -> list:
    for value in VALUES:
        await echo(value)
    await pair(1)
    await pair(1, b=(3,))
    mine = ["mine"]
    await grow(mine)
    mine.append("changed by the caller")
    async for _ in flyte.map.aio(echo, MAPPED, concurrency=3):
        pass
    async for _ in flyte.map.aio(pair, [1, "__main__"], [(2,), None], concurrency=2):
        pass
    await star(1, 2)
    return mine


def test_recorded_bytes_are_those_of_pickling_at_once(home):
    run = flyte.run(driver)
    assert run.outputs(timeout=30) == ["mine", "grown", "changed by the caller"]
    flyte.runs()  # commits what is pending
    conn = sqlite3.connect(home / DB_NAME)
    rows = conn.execute("SELECT a.number, a.inputs, a.outputs, a.note FROM actions a JOIN runs r ON r.id = a.run "
                        "WHERE r.name = ? ORDER BY a.number", (run.name,)).fetchall()
    calls = [((v,), {}, v) for v in VALUES] + [((1,), {}, (1, 2)), ((1,), {"b": (3,)}, (1, (3,)))]
    calls += [((["mine"],), {}, ["mine", "grown"])] + [((v,), {}, v) for v in MAPPED]
    calls += [((1, (2,)), {}, (1, (2,))), (("__main__", None), {}, ("__main__", None)), ((1, 2), {}, (1, 2))]
    specs = [echo.spec] * len(VALUES) + [pair.spec] * 2 + [grow.spec] + [echo.spec] * len(MAPPED) + [pair.spec] * 2
    specs += [star.spec]
    assert len(rows) == 1 + len(calls)
    store = get_store()
    for (number, inputs, output, note), spec, (args, kwargs, result) in zip(rows[1:], specs, calls):
        assert note is None, number
        assert store.unpack(inputs) == encode_inputs(spec, args, kwargs), number
        assert store.unpack(output) == dumps(result), number
    assert sum(isinstance(value, str) for row in rows for value in row[1:3]) == 4  # the large value: in and out, alone and mapped


@env.task
async def nap(x: int) -> int:
    await asyncio.sleep(0.05 if x < 3 else 1.5)
    return x


@env.task(cache="auto")
async def nap_cached(x: int) -> int:
    await asyncio.sleep(0.05 if x < 3 else 1.5)
    return x


@env.task
async def napping(cached: bool = False) -> list:
    return [r async for r in flyte.map.aio(nap_cached if cached else nap, range(6), concurrency=6)]


@pytest.mark.parametrize("cached", [False, True], ids=["plain", "cached task"])
def test_running_actions_are_written_with_their_inputs_while_they_run(home, cached):
    """A cached task's call is one record at its end; while it runs it is written from what the
    listener holds (the cache's prepared call), key included."""
    from flyte_nb.data import recorder

    run = flyte.with_runcontext(overwrite_cache=True).run(napping, cached)
    time.sleep(0.6)
    recorder.flush()
    conn = sqlite3.connect(home / DB_NAME)
    query = ("SELECT a.map_index, a.phase, a.inputs, a.outputs FROM actions a JOIN runs r ON r.id = a.run "
             "WHERE r.name = ? AND a.parent IS NOT NULL ORDER BY a.map_index")
    rows = conn.execute(query, (run.name,)).fetchall()
    assert [(i, phase) for i, phase, _, _ in rows] == [(0, "succeeded"), (1, "succeeded"), (2, "succeeded"),
                                                       (3, "running"), (4, "running"), (5, "running")]
    task = nap_cached if cached else nap
    assert all(inputs == encode_inputs(task.spec, (i,), {}) for i, _, inputs, _ in rows)
    assert [output for _, _, _, output in rows][3:] == [None] * 3
    keys = [key for (key,) in conn.execute(query.replace("a.map_index, a.phase, a.inputs, a.outputs", "a.cache_key"),
                                           (run.name,))]
    assert all(keys) if cached else not any(keys)  # the live rows of a cached task carry its key already
    assert run.outputs(timeout=30) == list(range(6))
    flyte.runs()
    rows = conn.execute(query, (run.name,)).fetchall()
    assert [(phase, output) for _, phase, _, output in rows] == [("succeeded", dumps(i)) for i in range(6)]
    assert all(inputs == encode_inputs(task.spec, (i,), {}) for i, _, inputs, _ in rows)
