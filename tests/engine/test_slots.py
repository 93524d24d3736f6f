"""Slot pools: FIFO hand-off, cancellation safety, ordered multi-pool acquisition."""

from __future__ import annotations

import asyncio

import pytest

from flyte_nb.engine.slots import SlotPool, acquire_all, in_order, release_all
from flyte_nb.errors import ConfigurationError


def test_capacity_and_statistics():
    async def scenario():
        pool = SlotPool(2, "p")
        assert pool.try_acquire() and pool.try_acquire()
        assert not pool.try_acquire()
        waiter = asyncio.ensure_future(pool.acquire())
        await asyncio.sleep(0)
        assert pool.statistics() == ("p", 2, 2, 1)
        pool.release()  # handed to the waiter: still 2 held
        await waiter
        assert pool.statistics() == ("p", 2, 2, 0)
        pool.release()
        pool.release()
        assert pool.statistics().holders == 0

    asyncio.run(scenario())


def test_waiters_are_served_in_order_and_at_once():
    async def scenario():
        pool = SlotPool(1, "p")
        await pool.acquire()
        order = []

        async def take(i):
            await pool.acquire()
            order.append(i)

        tasks = [asyncio.ensure_future(take(i)) for i in range(5)]
        await asyncio.sleep(0)
        for _ in range(5):
            pool.release()
            await asyncio.sleep(0)  # one loop turn is enough for the next waiter to run
        await asyncio.gather(*tasks)
        assert order == [0, 1, 2, 3, 4]

    asyncio.run(scenario())


def test_cancelled_waiter_leaves_nothing_held():
    async def scenario():
        pool = SlotPool(1, "p")
        await pool.acquire()
        waiter = asyncio.ensure_future(pool.acquire())
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        pool.release()
        assert pool.statistics() == ("p", 1, 0, 0)

    asyncio.run(scenario())


def test_slot_handed_to_a_waiter_that_is_cancelled_goes_to_the_next():
    async def scenario():
        pool = SlotPool(1, "p")
        await pool.acquire()
        first = asyncio.ensure_future(pool.acquire())
        second = asyncio.ensure_future(pool.acquire())
        await asyncio.sleep(0)
        pool.release()  # hand-off to `first` ...
        first.cancel()  # ... which is cancelled before it runs
        await asyncio.gather(first, return_exceptions=True)
        await second
        assert pool.statistics() == ("p", 1, 1, 0)

    asyncio.run(scenario())


def test_acquire_all_is_all_or_nothing():
    async def scenario():
        a, b = SlotPool(1, "a"), SlotPool(1, "b")
        b.try_acquire()
        attempt = asyncio.ensure_future(acquire_all(in_order([b, a])))
        await asyncio.sleep(0)
        assert a.statistics().holders == 1  # took a, waits for b
        attempt.cancel()
        await asyncio.gather(attempt, return_exceptions=True)
        assert a.statistics().holders == 0
        b.release()
        await acquire_all(in_order([a, b]))
        release_all(in_order([a, b]))
        assert (a.held, b.held) == (0, 0)

    asyncio.run(scenario())


def test_global_order_prevents_deadlock():
    async def scenario():
        a, b = SlotPool(1, "a"), SlotPool(1, "b")

        async def worker(pools):
            for _ in range(50):
                await acquire_all(in_order(pools))
                await asyncio.sleep(0)
                release_all(in_order(pools))

        await asyncio.wait_for(asyncio.gather(worker([a, b]), worker([b, a])), 5)

    asyncio.run(scenario())


@pytest.mark.parametrize("capacity", [0, -1, 1.5, "2", True])
def test_bad_capacity(capacity):
    with pytest.raises(ConfigurationError, match="positive whole capacity"):
        SlotPool(capacity, "x")


def test_release_without_acquire_is_an_error():
    with pytest.raises(RuntimeError, match="released more often"):
        SlotPool(1, "x").release()
