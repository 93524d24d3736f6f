"""The timeline kept as the run goes agrees with a sweep over every action, however batches arrive,
and a recorded run's stored lanes with a sweep over its actions table."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flyte_nb as flyte
from flyte_nb.data import recorder
from flyte_nb.data.occupancy import MAX_BINS, Lane
from flyte_nb.data.store import DB_NAME
from flyte_nb.server.timeline import series

spans_strategy = st.lists(
    st.tuples(st.floats(0, 50, allow_nan=False), st.floats(0, 5, allow_nan=False)).map(lambda p: (p[0], p[0] + p[1])),
    min_size=1, max_size=300)


@settings(max_examples=150, deadline=None)
@given(spans=spans_strategy, batches=st.integers(1, 12), seed=st.integers(0, 1000))
def test_batches_with_watermarks_give_the_exact_peak_and_mean(spans, batches, seed):
    start, end = 0.0, max(e for _, e in spans) + 1
    exact = series("run", "run", None, spans, start, end)
    lane = Lane("run", "run", start)
    order = sorted(spans, key=lambda s: s[1])  # written as they end
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(len(order) + 1), min(batches, len(order) + 1)))
    fed = 0
    for cut in [*cuts, len(order)]:
        lane.add([s for s, _ in order[fed:cut]], [e for _, e in order[fed:cut]])
        fed = cut
        still_open = [s for s, _ in order[cut:]]  # started, not written yet: holds the watermark back
        lane.sweep(min([order[cut - 1][1] if cut else 0.0, *still_open]))
    lane.sweep(float("inf"))
    kept = lane.series(None, end)
    assert kept["peak"] == exact["peak"]
    assert abs(kept["mean"] - exact["mean"]) < 1e-6 * max(1.0, exact["mean"])
    assert max(v for _, v in kept["points"]) == exact["peak"]
    assert len(kept["points"]) <= MAX_BINS + 2
    assert kept["points"][0][0] == start and kept["points"][-1][0] == end


def test_a_long_run_keeps_at_most_max_bins_and_its_brief_peaks():
    lane = Lane("run", "run", 0.0)
    spans = sorted([(t * 0.01, t * 0.01 + 0.005) for t in range(100_000)] + [(500.002, 500.003)] * 7,
                   key=lambda s: s[1])
    for at in range(0, len(spans), 5_000):
        lane.add([s for s, _ in spans[at:at + 5_000]], [e for _, e in spans[at:at + 5_000]])
        lane.sweep(spans[min(at + 5_000, len(spans) - 1)][0])
    lane.sweep(float("inf"))
    kept = lane.series(None, 1_001.0)
    assert kept["peak"] == 8 and len(kept["points"]) <= MAX_BINS + 2
    assert abs(kept["mean"] - (100_000 * 0.005 + 7 * 0.001) / 1_001.0) < 1e-6


def _bin_peaks(spans: list[tuple[float, float]], origin: float, width: float, bins: int) -> list[int]:
    """The most actions running at once in each bin, by a plain sweep (an end before a start at equal times)."""
    events = sorted([(s, 1) for s, _ in spans] + [(max(s, e), -1) for s, e in spans])
    peaks, level, at = [], 0, 0
    for index in range(bins):
        high = origin + (index + 1) * width
        peak = level
        while at < len(events) and events[at][0] < high:
            level += events[at][1]
            peak = max(peak, level)
            at += 1
        peaks.append(peak)
    return peaks


@settings(max_examples=150, deadline=None)
@given(spans=spans_strategy, batches=st.integers(1, 12), seed=st.integers(0, 1000))
def test_every_bin_keeps_its_own_peak(spans, batches, seed):
    """Not only the run's peak: each bin's, whichever events of a batch fall in it (ends only included)."""
    lane = Lane("run", "run", 0.0)
    order = sorted(spans, key=lambda s: s[1])
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(len(order) + 1), min(batches, len(order) + 1)))
    fed = 0
    for cut in [*cuts, len(order)]:
        lane.add([s for s, _ in order[fed:cut]], [e for _, e in order[fed:cut]])
        fed = cut
        lane.sweep(min([order[cut - 1][1] if cut else 0.0, *(s for s, _ in order[cut:])]))
    lane.sweep(float("inf"))
    assert lane.peaks == _bin_peaks(spans, 0.0, lane.width, len(lane.peaks))


# ------------------------------------------------------------------ a recorded run's timeline
env = flyte.TaskEnvironment("occupancy_tests")


@env.task
async def nap(x: int) -> int:
    await asyncio.sleep(0.001 * (x % 4))
    return x


@env.task
async def one_map(n: int) -> int:
    return sum([r async for r in flyte.map.aio(nap, range(n), concurrency=6)])


@env.task
async def two_maps(n: int) -> int:
    first = sum([r async for r in flyte.map.aio(nap, range(n), concurrency=6)])
    return first + sum([r async for r in flyte.map.aio(nap, range(n), concurrency=3)])


@env.task
async def map_and_call(n: int) -> int:
    """A leaf in no group after a map: the map's lane stops being the run lane's twin."""
    return sum([r async for r in flyte.map.aio(nap, range(n), concurrency=6)]) + await nap(3)


@env.task
async def nested(n: int) -> int:
    """Sub-drivers that are themselves fast-path actions (one int in, one out) with children."""
    return sum([r async for r in flyte.map.aio(one_map, [n] * 3, concurrency=2)]) + await nap(1)


def _stored_and_exact(home, name: str) -> tuple[dict, dict]:
    """The run's stored timeline series by name, and each as a sweep over its leaf actions computes it."""
    recorder.flush()
    conn = sqlite3.connect(home / DB_NAME)
    try:
        run_id, timeline = conn.execute("SELECT id, timeline FROM runs WHERE name = ?", (name,)).fetchone()
        rows = conn.execute("SELECT number, parent, grp, started_at, ended_at FROM actions WHERE run = ?",
                            (run_id,)).fetchall()
    finally:
        conn.close()
    timeline = json.loads(timeline)
    parents = {parent for _, parent, _, _, _ in rows}
    leaves = [(grp, (started, ended)) for number, _, grp, started, ended in rows if number not in parents]
    stored = {s["name"]: s for s in timeline["series"]}
    lanes = {"run": [span for _, span in leaves]}
    for grp, span in leaves:
        if grp is not None:
            lanes.setdefault(grp, []).append(span)
    exact = {lane: series(lane, "", None, spans, timeline["start"], timeline["end"]) for lane, spans in lanes.items()}
    return stored, exact


@pytest.mark.parametrize("driver, groups", [(one_map, {"nap"}), (two_maps, {"nap", "nap#2"}),
                                            (map_and_call, {"nap"}), (nested, {"nap", "nap#2", "nap#3"})])
def test_each_lane_of_a_recorded_run_is_the_sweep_of_its_leaves(home, driver, groups):
    """One map (its group lane is the run lane's twin), two maps and a map then a lone call (the twin
    splits), nested maps (a group of sub-drivers has no lane: only leaves are drawn). The mean is over
    the run's own span."""
    run = flyte.run(driver, 40)
    run.outputs()
    stored, exact = _stored_and_exact(home, run.name)
    assert groups <= set(stored) and set(exact) <= set(stored), (sorted(stored), sorted(exact))
    for name, want in exact.items():
        got = stored[name]
        assert got["kind"] == ("run" if name == "run" else "group"), (name, got["kind"])
        assert got["peak"] == want["peak"], (name, got["peak"], want["peak"])
        assert abs(got["mean"] - want["mean"]) < 1e-6 * max(1.0, want["mean"]), name
