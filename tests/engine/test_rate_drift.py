"""A late wake-up does not make a rate drift: the schedule stays anchored, the window bound holds.

The README promises that a timer wake-up up to 10 ms late (ordinary on a loaded machine) keeps
the schedule where it was, so the measured rate is the configured one, and that only lateness
beyond that is lost (making it up would exceed ``burst + rate * (t + SLACK)`` in some window).
"""

from __future__ import annotations

import asyncio
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from flyte_nb.engine.rates import SLACK, Rate, RatePool
from tests.engine.test_rates import worst_window

ABSORBED = 0.010  # the lateness the README says costs no rate


def _window_units(grants: list[tuple[float, float]], burst: int, interval: float) -> None:
    for i, (first, _) in enumerate(grants):
        units = 0.0
        for at, cost in grants[i:]:
            units += cost
            assert units <= burst + (at - first + SLACK) / interval + 1e-9, "more than the bound in a window"


@settings(max_examples=300, deadline=None)
@given(
    limit=st.sampled_from([1, 10, 100, 2000]),
    burst=st.integers(1, 4),
    costs=st.lists(st.integers(1, 4), min_size=1, max_size=40),
    lateness=st.lists(st.floats(0, 3 * ABSORBED), min_size=1, max_size=40),
)
def test_a_backlog_keeps_its_schedule_through_late_wakeups(limit, burst, costs, lateness):
    """A queued backlog served by wake-ups each ``L`` late: ``tat`` ends where the ideal schedule
    puts it when every ``L <= 10 ms``, never more than the lateness beyond ``SLACK`` after it, and
    no window of grants exceeds the bound (the pool's own wake-up step, ``_grant_due``)."""
    loop = asyncio.new_event_loop()
    try:
        pool = RatePool(Rate(limit, per="1s", burst=burst), "p")
        interval = 1.0 / limit
        costs = [min(c, burst) for c in costs]
        start = pool.tat = 1000.0  # the backlog queued while the schedule ran ahead of now
        for cost in costs:
            pool._waiters.append((loop.create_future(), cost))
        now, lost, grants, wake = 0.0, 0.0, [], 0
        while pool._waiters:
            late = lateness[wake % len(lateness)]
            wake += 1
            now = max(now, pool._due(pool._waiters[0][1])) + late
            lost += max(0.0, late - SLACK)
            before = len(pool._waiters)
            pool._grant_due(now)
            assert len(pool._waiters) < before, "a wake-up at or after the head's due time grants it"
            grants += [(now, cost) for cost in costs[len(grants):len(grants) + before - len(pool._waiters)]]
        ideal = start + sum(costs) * interval
        assert pool.tat <= ideal + lost + 1e-9, "the schedule slid by more than the lateness beyond SLACK"
        if max(lateness[:wake]) <= ABSORBED:
            assert abs(pool.tat - ideal) < 1e-9, "a wake-up up to 10 ms late moved the schedule"
        _window_units(grants, burst, interval)
    finally:
        loop.close()


class _LatenessPool(RatePool):
    """Records the pool's grant times and how late each wake-up came after the head's due time."""

    __slots__ = ("grants", "late")

    def __init__(self, rate: Rate, name: str) -> None:
        super().__init__(rate, name)
        self.grants: list[float] = []
        self.late: list[float] = []

    def _grant_due(self, now: float) -> None:
        if self._waiters:
            self.late.append(now - self._due(self._waiters[0][1]))
        before = self.granted
        super()._grant_due(now)
        self.grants += [now] * round(self.granted - before)


def test_a_loop_that_wakes_late_keeps_the_rate_and_the_bound():
    """200 waiters at 200/s on a loop that blocks itself for 6 ms every 40 ms (each blocking makes
    the pool's wake-up late as a busy machine does): the last start comes when the ideal schedule
    says, give or take the lateness beyond 10 ms that the machine itself added, and no window of
    starts exceeds ``1 + 200 * (t + SLACK)``."""
    n, per_second = 200, 200.0
    interval = 1 / per_second

    async def main() -> tuple[_LatenessPool, list[float]]:
        pool = _LatenessPool(Rate(per_second, per="1s"), "p")
        stamps: list[float] = []
        done = False

        async def one() -> None:
            await pool.acquire()
            stamps.append(time.monotonic())

        async def block() -> None:
            while not done:
                await asyncio.sleep(0.04)
                time.sleep(0.006)  # the engine thread busy (or not scheduled) for 6 ms

        blocker = asyncio.ensure_future(block())
        # all queued before the first grant: a loaded machine can take tens of ms to start 200 tasks
        pool.tat = time.monotonic() + 0.5
        await asyncio.gather(*(one() for _ in range(n)))
        done = True
        await blocker
        return pool, stamps

    pool, stamps = asyncio.run(main())
    assert len(pool.grants) == n, f"{n - len(pool.grants)} waiters were granted outside a wake-up"
    late_wakeups = sum(1 for late in pool.late if late > 0.004)
    assert late_wakeups >= 5, f"the blocking made only {late_wakeups} wake-ups late: the test proves nothing"
    beyond = sum(max(0.0, late - ABSORBED) for late in pool.late[1:])  # the machine's own stalls
    slide = (pool.grants[-1] - pool.grants[0]) - (n - 1) * interval
    assert slide <= beyond + 0.01, f"the schedule slid {slide * 1e3:.1f} ms, stalls beyond 10 ms explain {beyond * 1e3:.1f}"
    assert worst_window(pool.grants, per_second, 1) <= 1e-9, "the catch-up exceeded the window bound"
    assert worst_window(stamps, per_second, 1, tolerance=0.01) <= 0, "more than the bound started (stamps)"
