"""Why each action waited is recorded: a row per wait ("waiting for rate llm"), none for a free start."""

from __future__ import annotations

import asyncio
import sqlite3

import flyte_nb as flyte
from flyte_nb.data.store import DB_NAME

env = flyte.TaskEnvironment("waits_tests")


@env.task(tags=["llm"])
async def ask(i: int) -> int:
    await asyncio.sleep(0.05)
    return i


@env.task
async def fan(n: int) -> list[int]:
    return list(await asyncio.gather(*(ask(i) for i in range(n))))


def _waits(home) -> dict[int, list[tuple[float, str]]]:
    found: dict[int, list[tuple[float, str]]] = {}
    with sqlite3.connect(home / DB_NAME) as conn:
        for number, at, pool in conn.execute("SELECT action, at, pool FROM waits ORDER BY action, at"):
            found.setdefault(number, []).append((at, pool))
    return found


def test_a_rate_wait_is_recorded_as_its_own_reason(flyte_home):
    run = flyte.with_runcontext(throttle={"llm": flyte.Rate(20, per="1s")}).run(fan, 6)
    assert run.outputs(timeout=30) == list(range(6))
    flyte.runs()  # reads of history commit what is pending first
    waits = _waits(flyte_home)
    assert set(waits) == {2, 3, 4, 5, 6}, "the first child starts at once (burst 1), the driver waits for nothing"
    assert all([pool for _, pool in found] == ["rate:llm"] for found in waits.values())
    started = {a.number: a.started_at for a in run.actions}
    assert all(at <= started[number] for number, found in waits.items() for at, _ in found)


def test_each_pool_that_makes_an_action_wait_is_its_own_step(flyte_home):
    throttle = {"llm": [1, flyte.Rate(4, per="1s")]}  # one at a time, and at most 4 starts a second
    run = flyte.with_runcontext(throttle=throttle).run(fan, 3)
    assert run.outputs(timeout=30) == [0, 1, 2]
    flyte.runs()
    waits = _waits(flyte_home)
    pools = {number: [pool for _, pool in found] for number, found in waits.items()}
    assert pools[2] == ["tag:llm", "rate:llm"], "waited for the slot, then for the rate, in the one global order"
    assert all(p[0] == "tag:llm" for p in pools.values())


narrow = flyte.TaskEnvironment("waits_tests_narrow", concurrency=2)


@narrow.task
async def quick(i: int) -> int:
    await asyncio.sleep(0.02)  # the first two still hold their slots while a slow machine starts the rest
    return i


@narrow.task
async def quick_map(n: int) -> int:
    return sum([r async for r in flyte.map.aio(quick, range(n), concurrency=n)])


def test_an_action_that_waited_then_succeeded_in_one_batch_is_stored_succeeded(flyte_home):
    """Its wait and its success reach the writer together (it ran in 20 ms, well within a batch):
    the success, written from the fast path, supersedes the waiting phase drained before it."""
    run = flyte.run(quick_map, 30)
    assert run.outputs(timeout=30) == sum(range(30))
    flyte.runs()
    with sqlite3.connect(flyte_home / DB_NAME) as conn:
        phases = dict(conn.execute("SELECT number, phase FROM actions WHERE parent IS NOT NULL"))
    assert len(_waits(flyte_home)) >= 15, "the environment's 2 slots made most children wait"
    assert len(phases) == 30 and set(phases.values()) == {"succeeded"}, phases
