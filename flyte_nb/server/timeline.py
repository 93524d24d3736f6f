"""Slot occupancy over time: how many actions ran at each moment, against the limit.

The Runs panel draws one step chart per series (the whole run, each group, each throttled tag).
A series is built from the running intervals of its actions by a sweep over start/end times; a
long run is reduced to at most ``MAX_POINTS`` points, keeping each bucket's peak so that a brief
full occupancy still shows. ``mean`` (time-weighted) against ``capacity`` is the utilisation.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

MAX_POINTS = 400


def series(name: str, kind: str, capacity: int | None, intervals: Iterable[tuple[float, float]],
           start: float, end: float) -> dict[str, Any]:
    """One step series over ``[start, end]`` from ``(started, ended)`` intervals."""
    changes: list[tuple[float, int]] = []
    for began, ended in intervals:
        changes.append((began, 1))
        changes.append((max(began, ended), -1))
    changes.sort()
    points: list[list[float]] = [[start, 0]]
    running = peak = 0
    busy = 0.0  # integral of running over time
    last = start
    for at, delta in changes:
        busy += running * (at - last)
        last = at
        running += delta
        peak = max(peak, running)
        if points[-1][0] == at:
            points[-1][1] = running
        else:
            points.append([at, running])
    busy += running * max(0.0, end - last)
    if points[-1][0] < end:
        points.append([end, running])
    span = end - start
    return {
        "name": name, "kind": kind, "capacity": capacity, "peak": peak,
        "mean": busy / span if span > 0 else float(peak),
        "points": _reduce(points, start, end) if len(points) > MAX_POINTS else points,
    }


def _reduce(points: list[list[float]], start: float, end: float) -> list[list[float]]:
    """At most about ``MAX_POINTS`` points: each bucket keeps its highest value (and the last one)."""
    width = (end - start) / (MAX_POINTS // 2) or 1.0
    reduced: list[list[float]] = []
    bucket, high, current = 0, 0, 0
    for at, value in points:
        index = int((at - start) / width)
        if index != bucket:
            reduced.append([start + bucket * width, high])
            if current != high:
                reduced.append([start + (bucket + 0.5) * width, current])
            bucket, high = index, current
        current = value
        high = max(high, value)
    reduced.append([start + bucket * width, high])
    reduced.append([end, current])
    return reduced
