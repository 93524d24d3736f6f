"""The greenlet bridge: sync code inside a driven coroutine waits without blocking the loop."""

from __future__ import annotations

import asyncio
import contextvars
import time

import pytest

from flyte_nb.engine.bridge import await_only, drive, in_driven_code
from flyte_nb.errors import DeadlockError

var = contextvars.ContextVar("var", default="unset")


async def slow_value(value, delay=0.05):
    await asyncio.sleep(delay)
    return value, var.get()


def blocking_call(value):
    """Sync code, as a sync task call inside an async task would be."""
    return await_only(slow_value(value))


async def body(n):
    var.set(f"body-{n}")
    assert in_driven_code()
    return [blocking_call(i) for i in range(3)]


async def driven(coro):
    return await drive(coro, contextvars.copy_context())


def test_sync_waits_inside_driven_bodies_run_concurrently():
    async def scenario():
        start = time.perf_counter()
        results = await asyncio.gather(*(drive(body(n), contextvars.copy_context()) for n in range(10)))
        return results, time.perf_counter() - start

    results, elapsed = asyncio.run(scenario())
    assert results[4] == [(0, "body-4"), (1, "body-4"), (2, "body-4")]
    # 10 bodies × 3 sequential waits of 50 ms: concurrent means ~0.15 s, serial would be 1.5 s
    assert elapsed < 1.0  # well under serial's 1.5 s, with room for a loaded machine


def test_errors_keep_their_type_through_the_bridge():
    async def failing():
        raise KeyError("inner")

    async def outer():
        try:
            await_only(failing())
        except KeyError as error:
            return f"caught {error!r}"

    assert asyncio.run(driven(outer())) == "caught KeyError('inner')"

    async def raises():
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        asyncio.run(driven(raises()))


def test_cancellation_reaches_the_sync_frame():
    seen = []

    async def waits_forever():
        try:
            await_only(asyncio.sleep(30))
        except asyncio.CancelledError:
            seen.append("cancelled in sync frame")
            raise

    async def scenario():
        task = asyncio.ensure_future(drive(waits_forever(), contextvars.copy_context()))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert seen == ["cancelled in sync frame"]


def test_await_only_outside_driven_code_says_what_to_do():
    async def plain():
        return await_only(asyncio.sleep(0))

    with pytest.raises(DeadlockError, match=r"\.aio"):
        asyncio.run(plain())


def test_carriers_are_reused():
    from flyte_nb.engine import bridge

    async def trivial(x):
        return x

    async def scenario():
        await drive(trivial(0), contextvars.copy_context())
        before = len(bridge._pool.idle)
        for i in range(1000):
            assert await drive(trivial(i), contextvars.copy_context()) == i
        return before, len(bridge._pool.idle)

    before, after = asyncio.run(scenario())
    assert after == before


def test_a_drive_inside_a_driven_step_runs_on_the_same_carrier_in_its_own_context():
    """An action's body awaited inside a driven task (gather of task calls) takes no second carrier."""
    from greenlet import getcurrent

    seen = {}

    async def inner():
        var.set("inner")
        seen["inner"] = getcurrent()
        await asyncio.sleep(0)  # suspends: the next step may run on another carrier, still in place
        return blocking_call("x"), getcurrent()

    async def outer():
        var.set("outer")
        seen["outer"] = getcurrent()
        inner_context = contextvars.copy_context()
        result, later = await drive(inner(), inner_context)
        return result, later, var.get()

    result, later, after = asyncio.run(driven(outer()))
    assert seen["inner"] is seen["outer"]
    assert type(later) is type(seen["outer"])  # still on a carrier after the suspension
    assert result == ("x", "inner")  # the sync wait's coroutine ran in the inner drive's context
    assert after == "outer"  # and the outer one's context was left as it was


def test_cancellation_reaches_a_sync_frame_inside_a_nested_drive():
    seen = []

    async def waits_forever():
        try:
            await_only(asyncio.sleep(30))
        except asyncio.CancelledError:
            seen.append("cancelled in sync frame")
            raise

    async def outer():
        return await drive(waits_forever(), contextvars.copy_context())

    async def scenario():
        task = asyncio.ensure_future(drive(outer(), contextvars.copy_context()))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert seen == ["cancelled in sync frame"]
