"""``Timeout(max_queued_time=...)``: an attempt that waits for its slots longer than that fails.

It fails with Flyte's ``MaxQueuedTimeExceededError`` (also flyte_nb's ``ActionQueuedTimeoutError``,
a ``TaskTimeoutError``), never starts its body, holds nothing afterwards, and a retry waits again
with a fresh bound. Flyte's local mode accepts the bound and does not enforce it.
"""

from __future__ import annotations

import asyncio
import time

import pytest

import flyte_nb as flyte
from flyte_nb import Phase

STARTED: list[str] = []

busy = flyte.TaskEnvironment("queued-busy", concurrency=1)
free = flyte.TaskEnvironment("queued-free")


@busy.task
async def hold(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return time.monotonic()


@busy.task(tags=["db"], retries=1, timeout=flyte.Timeout(max_queued_time=0.3))
async def impatient() -> str:
    STARTED.append("impatient")
    return "ran"


@busy.task(timeout=flyte.Timeout(max_queued_time=30))
async def patient() -> str:
    return "ran"


@free.task(tags=["db"])
async def uses_db() -> float:
    return time.monotonic()


@free.task
async def crowd(patience: str) -> dict:
    held = asyncio.ensure_future(hold(1.5))
    await asyncio.sleep(0.1)  # `hold` has the environment's only slot
    waiter = asyncio.ensure_future(impatient() if patience == "impatient" else patient())
    await asyncio.sleep(0.05)
    db = asyncio.ensure_future(uses_db())  # waits behind the impatient one for the tag, if it holds it
    outcome: object
    try:
        outcome = await waiter
    except flyte.errors.MaxQueuedTimeExceededError as error:
        outcome = (type(error).__name__, error.code, isinstance(error, flyte.errors.TaskTimeoutError))
    return {"outcome": outcome, "db_at": await db, "held_until": await held}


def test_an_attempt_that_waits_longer_than_max_queued_time_fails_without_starting():
    STARTED.clear()
    start = time.monotonic()
    run = flyte.with_runcontext(throttle={"db": 1}).run(crowd, "impatient")
    result = run.outputs(timeout=30)
    assert result["outcome"] == ("ActionQueuedTimeoutError", "MaxQueuedTimeExceededError", True)
    assert STARTED == []  # its body never ran
    waiter = next(a for a in run.actions if a.task.endswith("impatient"))
    assert waiter.phase == Phase.TIMED_OUT and waiter.attempts == 2  # retried once, each with its own bound
    assert waiter.started_at is None
    assert isinstance(waiter.error, flyte.ActionQueuedTimeoutError)
    # it gave back the tag it may have taken while waiting: the other `db` user did not wait for `hold`
    assert result["db_at"] < result["held_until"]
    assert all(s.holders == 0 and s.waiting == 0 for s in run.statistics())
    assert time.monotonic() - start < 20


one = flyte.TaskEnvironment("queued-one", concurrency=1)


@free.task(tags=["db"])
async def hold_db(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return time.monotonic()


@one.task(tags=["db"], timeout=flyte.Timeout(max_queued_time=0.3))
async def takes_env_then_waits_for_db() -> str:
    return "ran"


@one.task
async def next_in_line() -> float:
    return time.monotonic()


@free.task
async def holds_one_waits_for_other() -> dict:
    held = asyncio.ensure_future(hold_db(1.5))
    await asyncio.sleep(0.1)
    waiter = asyncio.ensure_future(takes_env_then_waits_for_db())  # takes `one`'s only slot, waits for db
    await asyncio.sleep(0.05)
    after = asyncio.ensure_future(next_in_line())  # needs `one`'s slot
    try:
        await waiter
        outcome = "ran"
    except flyte.ActionQueuedTimeoutError:
        outcome = "timed out"
    return {"outcome": outcome, "next_at": await after, "held_until": await held}


def test_a_timed_out_waiter_gives_back_the_slots_it_took_while_waiting():
    run = flyte.with_runcontext(throttle={"db": 1}).run(holds_one_waits_for_other)
    result = run.outputs(timeout=15)
    assert result["outcome"] == "timed out"
    assert result["next_at"] < result["held_until"]  # `one`'s slot came back when the waiter gave up
    assert all(s.holders == 0 and s.waiting == 0 for s in run.statistics())


def test_an_attempt_that_gets_its_slots_in_time_runs():
    run = flyte.run(crowd, "patient")
    assert run.outputs(timeout=30)["outcome"] == "ran"


def test_a_run_aborted_while_an_action_waits_is_cancelled_not_timed_out():
    run = flyte.with_runcontext(throttle={"db": 1}).run(crowd, "impatient")
    time.sleep(0.25)
    run.abort()
    with pytest.raises(flyte.errors.ActionAbortedError):
        run.outputs(timeout=30)
    assert all(a.phase != Phase.RUNNING for a in run.actions)
    assert all(s.holders == 0 for s in run.statistics())
