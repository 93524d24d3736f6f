"""Slot-occupancy series: exact steps, time-weighted mean, and peaks kept when reduced."""

from __future__ import annotations

from flyte_nb.server.timeline import MAX_POINTS, series


def test_steps_follow_starts_and_ends():
    s = series("g", "group", 2, [(1.0, 3.0), (2.0, 4.0), (3.0, 5.0)], 0.0, 6.0)
    assert s["points"] == [[0.0, 0], [1.0, 1], [2.0, 2], [3.0, 2], [4.0, 1], [5.0, 0], [6.0, 0]]
    assert s["peak"] == 2 and s["capacity"] == 2
    assert s["mean"] == (2 + 2 + 2) / 6  # six action-seconds over six seconds


def test_an_empty_series_is_flat():
    s = series("run", "run", None, [], 10.0, 12.0)
    assert s["points"] == [[10.0, 0], [12.0, 0]] and s["peak"] == 0 and s["mean"] == 0


def test_a_long_series_is_reduced_but_keeps_brief_peaks():
    intervals = [(i * 1.0, i * 1.0 + 0.5) for i in range(5_000)]  # one at a time...
    intervals += [(2_500.1, 2_500.2)] * 3  # ...except for a blink with four
    s = series("g", "group", 4, intervals, 0.0, 5_000.0)
    assert len(s["points"]) <= MAX_POINTS + 2
    assert max(value for _, value in s["points"]) == 4 == s["peak"]
    assert [p[0] for p in s["points"]] == sorted(p[0] for p in s["points"])
    assert abs(s["mean"] - (2_500 + 0.3) / 5_000) < 1e-9
