"""Units granted per bin of time, for a run's timeline: what a rate pool hands out, as it does.

A rate lane of the Lab's run view draws units started per second against the limit. Counting
them from the store's actions afterwards costs a scan of every action on every request and
misses what a task body takes from a ``RateLimiter``. Instead each rate pool feeds the lanes of
the runs that use it (:meth:`Lanes.follow`) at every grant, settlement and refund: one bin add,
in bins that double in width as the run goes on (at most ``MAX_BINS``), so drawing a lane costs
the same at ten grants or a million. A lane counts the budget's grants while its run is live
(every user of the budget: that is what the limit bounds); it stops when its run ends.
"""

from __future__ import annotations

import math
import time
import weakref
from typing import Any

MAX_BINS = 200  # the timeline draws at most ``server.timeline.MAX_POINTS / 2`` points per rate lane
FIRST_WIDTH = 0.05  # seconds per bin to begin with
SHOWN_WIDTH = 1.0  # a drawn bucket spans at least a second: single starts are not drawn as spikes


class GrantLane:
    """One run's view of one pool: units granted per bin since ``origin``, just before the wall-clock
    time of its first grant (so the first drawn second holds the first ``limit`` grants, and grants
    exactly one interval apart never straddle a bucket edge by a rounding error)."""

    __slots__ = ("name", "origin", "width", "counts", "total", "run")

    def __init__(self, name: str, run: Any) -> None:
        self.name = name
        self.origin: float | None = None
        self.width = FIRST_WIDTH
        self.counts: list[float] = []
        self.total = 0.0  # units granted (net of refunds and settlements)
        self.run = weakref.ref(run)

    def add(self, at: float, units: float) -> None:
        if self.origin is None:  # half a bin early: a smooth schedule's grants fall mid-bin, not on an edge
            self.origin = at - FIRST_WIDTH / 2
        index = int((at - self.origin) / self.width)
        while index >= MAX_BINS:
            self._coarsen()
            index = int((at - self.origin) / self.width)
        counts = self.counts
        if index >= len(counts):
            counts += [0.0] * (index + 1 - len(counts))
        counts[index if index > 0 else 0] += units
        self.total += units

    def _coarsen(self) -> None:
        counts = self.counts
        if len(counts) % 2:
            counts.append(0.0)
        self.counts = [a + b for a, b in zip(counts[0::2], counts[1::2])]
        self.width *= 2

    def series(self, limit: float | None, start: float, end: float) -> dict[str, Any]:
        """Units per second over ``[start, end]`` as a step series (the server's rate-lane shape)."""
        counts, width, origin = list(self.counts), self.width, self.origin
        end = max(end, start + 1e-9)
        first = origin if origin is not None and start <= origin < end else start
        per = max(1, math.ceil(SHOWN_WIDTH / width - 1e-9),  # bins per drawn bucket: a second or more,
                  math.ceil((end - first) / (MAX_BINS * width) - 1e-9))  # at most MAX_BINS buckets
        shown = per * width
        buckets = [sum(counts[i:i + per]) for i in range(0, len(counts), per)] or [0.0]
        last = max(0, int((end - first) / shown))  # the bucket ``end`` falls in (later grants are not drawn)
        buckets = buckets[:last + 1] + [0.0] * (last + 1 - len(buckets))
        edges = [first + i * shown for i in range(last + 1)] + [end]
        # per second of a whole bucket, the last (cut short by ``end``) too: a rate that keeps its
        # limit then draws at most ``burst / shown`` above it, and a second just begun is not a spike
        rates = [round(n / shown, 3) for n in buckets]
        points = [[a, r] for a, r in zip(edges, rates)] + [[end, rates[-1]]]
        if first > start:  # nothing granted before the first grant
            points.insert(0, [start, 0.0])
        span = end - start
        return {"name": self.name, "kind": "rate", "capacity": limit, "started": _whole(self.total),
                "peak": max(rates), "mean": round(self.total / span, 3) if span > 0 else 0.0, "points": points}


class Lanes:
    """The lanes a pool feeds: one per live run that uses it (a tuple, replaced, never mutated:
    the writer thread may read while the engine thread grants)."""

    __slots__ = ("lanes",)

    def __init__(self) -> None:
        self.lanes: tuple[GrantLane, ...] = ()

    def follow(self, name: str, run: Any) -> GrantLane:
        """A new lane of ``run`` for this pool, fed from now until the run ends."""
        lane = GrantLane(name, run)
        self.lanes = (*(lane for lane in self.lanes if _live(lane)), lane)
        return lane

    def add(self, units: float) -> None:
        """``units`` granted now (negative: given back); called only when ``self.lanes`` is not empty."""
        at = time.time()
        stale = False
        for lane in self.lanes:
            if _live(lane):
                lane.add(at, units)
            else:
                stale = True
        if stale:
            self.lanes = tuple(lane for lane in self.lanes if _live(lane))


def _live(lane: GrantLane) -> bool:
    run = lane.run()
    return run is not None and run.ended_at is None


def _whole(value: float) -> Any:
    rounded = round(value)
    return int(rounded) if abs(value - rounded) < 1e-9 else round(value, 3)


class Recent:
    """Units granted over about the last ``window`` seconds (``statistics()``'s granted per second):
    ``PARTS`` sub-bins of ``window / PARTS`` seconds in a ring, so a grant costs one add, with no
    record per grant to allocate and prune. Counts the current sub-bin and the ``PARTS - 1`` before."""

    __slots__ = ("width", "counts", "at")
    PARTS = 20

    def __init__(self, window: float) -> None:
        self.width = window / self.PARTS
        self.counts = [0.0] * self.PARTS
        self.at = 0  # index of the newest sub-bin counted

    def add(self, now: float, units: float) -> None:
        index = int(now / self.width)
        if index != self.at:
            self._roll(index)
        self.counts[index % self.PARTS] += units

    def _roll(self, index: int) -> None:
        if index < self.at:  # never back in time (a sub-bin already reused)
            return
        parts, counts = self.PARTS, self.counts
        if index - self.at >= parts:
            counts[:] = [0.0] * parts
        else:
            for i in range(self.at + 1, index + 1):
                counts[i % parts] = 0.0
        self.at = index

    def total(self, now: float) -> float:
        self._roll(int(now / self.width))
        return sum(self.counts)
