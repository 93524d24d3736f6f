"""Grant lanes: a rate pool counts what it grants per bin of time for each live run that uses it."""

from __future__ import annotations

import asyncio
import time

from flyte_nb.engine.grant_lanes import MAX_BINS, GrantLane, Lanes
from flyte_nb.engine.rates import Rate


class _Run:
    ended_at = None


def test_a_lane_draws_units_per_second_in_buckets_of_a_second_or_more():
    lane = GrantLane("rate:x", _Run())
    for i in range(60):  # 10/s for 6 s
        lane.add(100.0 + i * 0.1, 1)
    shown = lane.series(10, 100.0, 106.0)
    assert shown["started"] == 60 and shown["capacity"] == 10 and shown["kind"] == "rate"
    rates = [value for _, value in shown["points"]]
    assert rates[:6] == [10.0] * 6 and shown["peak"] == 10.0
    assert shown["points"][0][0] == 100.0 and shown["points"][-1][0] == 106.0


def test_a_lane_stays_small_however_long_the_run():
    lane = GrantLane("rate:x", _Run())
    for i in range(36_000):  # 10/s for an hour
        lane.add(i * 0.1, 1)
    assert len(lane.counts) <= MAX_BINS and lane.total == 36_000
    shown = lane.series(10, 0.0, 3_600.0)
    assert len(shown["points"]) <= MAX_BINS + 2
    values = [value for _, value in shown["points"]]
    assert all(abs(value - 10) < 0.5 for value in values[:-2]), "coarser bins, the same rate"
    assert values[-1] <= 10.5, "the last bucket, cut short by the end, is not drawn above the rate"


def test_a_bucket_cut_short_by_the_end_counts_per_whole_bucket_and_settlements_count_net():
    lane = GrantLane("rate:x", _Run())
    lane.add(0.0, 5)
    lane.add(1.05, 5)
    lane.add(1.06, -2)  # settled: 2 of the estimate not used
    shown = lane.series(5, 0.0, 1.1)  # the second bucket is 0.1 s long: 3 units drawn as 3/s, not 30/s
    assert shown["started"] == 8
    assert [value for _, value in shown["points"]] == [5.0, 3.0, 3.0]


def test_a_pool_feeds_the_lanes_of_live_runs_only():
    async def main() -> tuple[float, float, int]:
        pool = Rate(1000, per="1s", burst=100).pool("rate:fed")
        live, ended = _Run(), _Run()
        first = pool.lanes.follow(pool.name, live)
        second = pool.lanes.follow(pool.name, ended)
        for _ in range(10):
            await pool.acquire()
        ended.ended_at = time.time()
        for _ in range(5):
            await pool.acquire()
        pool.settle(1, 3)
        return first.total, second.total, len(pool.lanes.lanes)

    first, second, following = asyncio.run(main())
    assert first == 17 and second == 10, "an ended run's lane stops counting"
    assert following == 1, "and the pool lets go of it"


def test_lanes_of_no_run_cost_nothing():
    lanes = Lanes()
    assert lanes.lanes == ()


def test_a_lane_whose_grants_stopped_early_still_draws_few_points():
    lane = GrantLane("rate:x", _Run())
    for i in range(100):
        lane.add(i * 0.1, 1)
    shown = lane.series(10, 0.0, 3_600.0)  # granted for 10 s of an hour
    assert len(shown["points"]) <= MAX_BINS + 2 and shown["started"] == 100
