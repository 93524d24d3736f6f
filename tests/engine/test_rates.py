"""Rate pools in real time: the smooth GCRA schedule, FIFO, one timer, cancellation, settle."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flyte_nb.engine.rates import SLACK, Rate, RatePool, per_seconds
from flyte_nb.errors import ConfigurationError


def worst_window(times: list[float], per_second: float, burst: int, tolerance: float = 0.0) -> float:
    """The largest ``count - (burst + per_second * (span + SLACK + tolerance))`` over every window
    of starts (every pair first..last of the sorted times): > 0 means the rate was exceeded."""
    times = sorted(times)
    worst = -float("inf")
    for i, first in enumerate(times):
        for j in range(i, len(times)):
            excess = (j - i + 1) - (burst + per_second * (times[j] - first + SLACK + tolerance))
            worst = max(worst, excess)
    return worst


def test_rate_values_and_clear_errors():
    assert Rate(60, per="1m").interval == 1.0
    assert Rate(10).interval == pytest.approx(0.1)
    assert per_seconds("500ms") == 0.5 and per_seconds("h") == 3600 and per_seconds(2) == 2.0
    for bad in (dict(limit=0), dict(limit="10"), dict(limit=10, burst=0), dict(limit=10, per="1 fortnight"),
                dict(limit=10, per=-1), dict(limit=True)):
        with pytest.raises(ConfigurationError, match="Rate|per"):
            Rate(**bad)


async def _grant_times(pool: RatePool, n: int, cost: float = 1) -> list[float]:
    times: list[float] = [0.0] * n
    order: list[int] = []

    async def one(i: int) -> None:
        await pool.acquire(cost)
        times[i] = time.monotonic()
        order.append(i)

    await asyncio.gather(*(one(i) for i in range(n)))
    assert order == list(range(n)), "grants are FIFO"
    return times


def test_smooth_schedule_no_startup_burst_and_fifo():
    async def main() -> tuple[float, list[float]]:
        pool = Rate(50, per="1s").pool("p")
        start = time.monotonic()
        times = await _grant_times(pool, 25)
        return start, times

    start, times = asyncio.run(main())
    assert worst_window(times, 50, 1, tolerance=0.005) <= 0
    assert times[1] - times[0] >= 0.02 - SLACK - 0.001, "no start-up burst: the second waits one interval"
    assert 24 * 0.02 - SLACK <= times[-1] - start < 24 * 0.02 + 0.5


def test_burst_is_the_only_allowance():
    async def main() -> list[float]:
        return await _grant_times(Rate(20, per="1s", burst=4).pool("p"), 12)

    times = asyncio.run(main())
    assert times[3] - times[0] < 0.02, "four back to back"
    assert times[4] - times[0] >= 0.05 - SLACK - 0.001, "the fifth waits for one interval"
    assert worst_window(times, 20, 4, tolerance=0.005) <= 0


def test_one_timer_for_all_waiters():
    async def main() -> int:
        pool = Rate(100, per="1s").pool("p")
        loop = asyncio.get_running_loop()
        tasks = [asyncio.ensure_future(pool.acquire()) for _ in range(40)]
        most = 0
        while not all(t.done() for t in tasks):
            await asyncio.sleep(0.003)
            timers = [h for h in loop._scheduled if not h.cancelled() and getattr(h, "_callback", None) == pool._fire]
            most = max(most, len(timers))
        return most

    assert asyncio.run(main()) == 1


def test_a_cancelled_waiter_consumes_nothing():
    async def main() -> tuple[dict[str, float], float]:
        pool = Rate(10, per="1s").pool("p")
        start = time.monotonic()
        assert pool.try_acquire()
        ends: dict[str, float] = {}

        async def waiter(label: str) -> None:
            await pool.acquire()
            ends[label] = time.monotonic() - start

        a, b, c, d = (asyncio.ensure_future(waiter(x)) for x in "abcd")
        await asyncio.sleep(0.03)
        b.cancel()  # behind the head: skipped when its turn comes
        await a
        await asyncio.sleep(0.03)
        c.cancel()  # the head, with the timer armed for it
        await d
        return ends, pool.granted

    ends, granted = asyncio.run(main())
    assert sorted(ends) == ["a", "d"]
    assert 0.1 - SLACK - 0.001 <= ends["a"] < 0.17
    assert 0.2 - SLACK - 0.001 <= ends["d"] < 0.27, "d took the next turn: the cancelled ones took none"
    assert granted == 3


def test_granted_then_cancelled_is_refunded():
    async def main() -> tuple[float, float]:
        pool = Rate(10, per="1s").pool("p")
        assert pool.try_acquire()
        task = asyncio.ensure_future(pool.acquire())
        await asyncio.sleep(0)  # queued behind the first
        pool.tat = time.monotonic() - 1  # its turn has come ...
        pool._fire()  # ... the grant lands ...
        task.cancel()  # ... and the task is cancelled before it resumes
        with pytest.raises(asyncio.CancelledError):
            await task
        return pool.granted, pool.available()

    granted, available = asyncio.run(main())
    assert granted == 1, "the unit granted to the cancelled waiter came back"
    assert available == 1


def test_settle_refunds_and_charges_the_difference():
    async def main() -> tuple[float, float]:
        pool = Rate(100, per="1s", burst=100).pool("tpm")  # 100 tokens a second
        assert pool.try_acquire(100)  # an estimate of 100 tokens empties the bucket
        assert not pool.try_acquire(50)
        pool.settle(100, 40)  # really 40: 60 come back
        refunded = pool.available()
        assert pool.try_acquire(50)
        pool.settle(50, 150)  # really 150: 100 more owed
        return refunded, pool.available()

    refunded, debt = asyncio.run(main())
    assert 59 <= refunded <= 61
    assert -92 <= debt <= -88


def test_waiters_follow_a_settlement_and_a_new_rate():
    async def main() -> tuple[float, float]:
        pool = Rate(2, per="1s").pool("p")  # one every 0.5 s
        start = time.monotonic()
        assert pool.try_acquire()
        task = asyncio.ensure_future(pool.acquire())
        await asyncio.sleep(0.05)
        pool.settle(1, 0)  # refund: the waiter goes at once
        await task
        first = time.monotonic() - start
        pool.set_rate(Rate(20, per="1s"))  # from the next grant: 0.05 s apart
        second_start = time.monotonic()
        await pool.acquire()
        await pool.acquire()
        return first, time.monotonic() - second_start

    first, second = asyncio.run(main())
    assert first < 0.2, "the refund let the waiter go at once"
    assert 0.1 - SLACK - 0.005 <= second < 0.3, "two grants at the new 20/s (not the old 2/s)"


def test_statistics_show_rate_use():
    async def main():
        pool = Rate(50, per="1s", burst=5).pool("rate:llm")
        began = time.monotonic()
        for _ in range(5):
            assert pool.try_acquire()
        waiter = asyncio.ensure_future(pool.acquire())
        await asyncio.sleep(0)
        stats = pool.statistics()
        elapsed = time.monotonic() - began
        await waiter
        return stats, elapsed

    stats, elapsed = asyncio.run(main())
    assert stats.name == "rate:llm" and stats.capacity == 50 and stats.holders == 5 and stats.waiting == 1
    assert stats.rate == 50 and stats.granted_per_s == 5
    # the burst is spent: only what 50/s gave back since (a loaded machine may take 10 ms to get here)
    assert stats.available <= 50 * elapsed + 1e-6, (stats.available, elapsed)


def test_waiting_counts_only_live_waiters():
    async def main() -> list[int]:
        pool = Rate(100, per="1s").pool("p")
        assert pool.try_acquire()
        tasks = [asyncio.ensure_future(pool.acquire()) for _ in range(5)]
        await asyncio.sleep(0)
        seen = [pool.statistics().waiting]
        tasks[2].cancel()  # behind the head
        tasks[0].cancel()  # the head
        await asyncio.sleep(0)
        seen.append(pool.statistics().waiting)
        await asyncio.gather(*tasks, return_exceptions=True)
        seen.append(pool.statistics().waiting)
        return seen

    assert asyncio.run(main()) == [5, 3, 0]


@settings(max_examples=300, deadline=None)
@given(
    limit=st.integers(1, 50),
    burst=st.integers(1, 5),
    steps=st.lists(st.tuples(st.floats(0, 0.3), st.integers(1, 5), st.floats(0, 0.004)), min_size=1, max_size=60),
)
def test_the_schedule_never_exceeds_its_bound(limit, burst, steps):
    """Whatever the arrivals, weights (up to burst) and loop lateness: in any window from one grant
    to another, the units granted are at most ``burst + (span + SLACK) / interval``."""
    pool = Rate(limit, per="1s", burst=burst).pool("p")
    interval = 1.0 / limit
    now, grants = 0.0, []
    for gap, cost, lateness in steps:
        cost = min(cost, burst)
        now += gap
        due = pool._due(cost)
        if now >= due:
            pool._grant(now, cost, late=False)  # conforms on arrival: granted at once
        else:
            now = due + lateness  # queued: the timer delivers it, maybe late
            pool._grant(now, cost, late=True)
        grants.append((now, cost))
    for i, (first, _) in enumerate(grants):
        units = 0
        for at, cost in grants[i:]:
            units += cost
            assert units <= burst + (at - first + SLACK) / interval + 1e-9
