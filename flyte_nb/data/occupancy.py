"""Slot occupancy of a run, kept up to date by the writer as it records: the Runs panel's timeline.

Computing the timeline from the actions table costs a sweep over every action (2 s at 200,000),
on every request. Instead the writer feeds each batch's finished leaf actions into one
:class:`Lane` per series (the run, each group, each throttled tag) and stores the result in the
run's row (``runs.timeline``), so that reading it costs the same at ten actions or a million.

A lane sweeps start/end events in time order. Events arrive out of order (an action is written
when it ends), so a batch sweeps only the events before its *watermark*: the earliest start
among actions still running (or the batch's own time, less a margin); later ones wait for the
next batch. What waits is bounded by the concurrency. Time is cut into at most ``MAX_BINS`` bins
that keep their peak (widths double as the run goes on), the time-weighted mean is exact.
Rate lanes (units granted per second) are kept by the rate pools themselves as they grant
(:mod:`flyte_nb.engine.grant_lanes`); the run's row gets them with the rest.
"""

from __future__ import annotations

import json
import time
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from itertools import repeat
from operator import attrgetter, sub
from typing import TYPE_CHECKING, Any

from ..engine.rates import recorded_limit
from .records import DONE_WIDTH

if TYPE_CHECKING:
    from ..engine.action import Action
    from ..engine.run import RunState

MAX_BINS = 400
FIRST_WIDTH = 0.005  # seconds per bin to begin with
MARGIN = 0.25  # seconds before a batch's time an action may have started without the writer seeing it yet
_PARENT, _GROUP, _NUMBER, _PHASE = attrgetter("parent"), attrgetter("group"), attrgetter("number"), attrgetter("phase")
_STARTED, _ENDED = attrgetter("started_at"), attrgetter("ended_at")
_END = float("inf")


class Lane:
    """One series: running leaf actions over time, as bins of peaks and an exact busy integral.

    Events wait as two lists of floats, starts and ends, not as (time, +1/-1) tuples: sorting
    floats is a C comparison each, and a tuple per event was most of the writer's cost of a
    large run (measured: 4.5 us an action for the run's two lanes, against ~1 us now).
    """

    __slots__ = ("name", "kind", "origin", "width", "peaks", "level", "busy", "last", "starts", "ends")

    def __init__(self, name: str, kind: str, origin: float) -> None:
        self.name = name
        self.kind = kind
        self.origin = origin
        self.width = FIRST_WIDTH
        self.peaks: list[int] = []  # per bin, the most actions running at once
        self.level = 0  # running now (as far as swept)
        self.busy = 0.0  # action-seconds swept so far
        self.last = origin  # time of the last swept event
        self.starts: list[float] = []  # events at or after the watermark
        self.ends: list[float] = []

    def add(self, starts: list[float], ends: list[float]) -> None:
        """Spans of actions that ran (``ends[i]`` belongs to ``starts[i]``)."""
        self.starts += starts
        self.ends += map(max, starts, ends)

    def sweep(self, watermark: float) -> bool:
        """Take the events before ``watermark`` into the bins; whether anything changed.

        At equal times an end comes before a start (as a sweep over sorted (time, -1/+1) would):
        the level after a start is what started by then less what ended by then.
        """
        starts, ends = self.starts, self.ends
        if not starts and not ends:
            return False
        starts.sort()
        ends.sort()
        cut_s, cut_e = bisect_left(starts, watermark), bisect_left(ends, watermark)
        if not cut_s and not cut_e:
            return False
        s, self.starts = starts[:cut_s], starts[cut_s:]
        e, self.ends = ends[:cut_e], ends[cut_e:]
        last, level = self.last, self.level
        if (s and s[0] < last) or (e and e[0] < last):  # never before what was swept (clock steps)
            s, e = list(map(max, s, repeat(last))), list(map(max, e, repeat(last)))
        end = max(s[-1] if s else last, e[-1] if e else last)
        self.busy += level * (end - last) + sum(map(sub, repeat(end), s)) - sum(map(sub, repeat(end), e))
        while end - self.origin >= self.width * MAX_BINS:
            self._coarsen()
        origin, width = self.origin, self.width
        after = list(map(sub, range(level + 1, level + 1 + len(s)), map(bisect_right, repeat(e), s)))  # each start
        first_bin = max(0, self._bin(min(s[0] if s else end, e[0] if e else end)))
        last_bin = self._bin(end)
        peaks = self.peaks
        for index in range(first_bin, last_bin + 1):  # a step per bin: the events are handled in C loops
            low = origin + index * width if index > first_bin else -_END  # the first and last bins take
            high = origin + (index + 1) * width if index < last_bin else _END  # whatever rounding left out
            first, stop = bisect_left(s, low), bisect_left(s, high)
            ended, ending = bisect_left(e, low), bisect_left(e, high)
            if first == stop and ended == ending:
                continue  # nothing happened here: _reach fills it from the next bin that has events
            entering = level + first - ended
            self._reach(index, entering)
            peaks[index] = max(peaks[index], entering, max(after[first:stop], default=entering))
        self.level = level + len(s) - len(e)
        self.last = end
        return True

    def _bin(self, at: float) -> int:
        """The bin holding time ``at``, by the same bounds (``origin + index * width``) as the sweep's
        (a division alone may round a time on a bound into the next bin)."""
        origin, width = self.origin, self.width
        index = int((at - origin) / width)
        if index > 0 and origin + index * width > at:
            index -= 1
        elif origin + (index + 1) * width <= at:
            index += 1
        return index

    def _reach(self, index: int, level: int) -> None:
        """Bins up to ``index`` exist; new ones start at ``level`` (what ran when they began)."""
        missing = index + 1 - len(self.peaks)
        if missing > 0:
            self.peaks += [level] * missing

    def _coarsen(self) -> None:
        peaks = self.peaks
        if len(peaks) % 2:
            peaks.append(self.level)
        self.peaks = list(map(max, peaks[0::2], peaks[1::2]))
        self.width *= 2

    def series(self, capacity: int | None, end: float) -> dict[str, Any]:
        """What the Runs panel draws, as :func:`flyte_nb.server.timeline.series` gives it."""
        end = max(end, self.last)
        span = end - self.origin
        busy = self.busy + self.level * (end - self.last)
        points: list[list[float]] = [[self.origin, 0]]
        for index, peak in enumerate(self.peaks):
            at = self.origin + index * self.width
            if points[-1][0] == at:
                points[-1][1] = peak
            else:
                points.append([at, peak])
        points.append([end, self.level])
        return {"name": self.name, "kind": self.kind, "capacity": capacity, "peak": max(self.peaks, default=0),
                "mean": busy / span if span > 0 else float(max(self.peaks, default=0)), "points": points}


class Occupancy:
    """Every lane of one run, fed by the writer thread (the only thread that touches it).

    While every leaf so far belongs to one group (one map, the usual run), that group's lane is
    the run lane itself (``twin``): one sweep serves both until a leaf outside it arrives.
    """

    def __init__(self, state: RunState) -> None:
        self.state = state
        self.lanes: dict[str, Lane] = {}
        self.twin: str | None = None  # the group whose lane is the run lane's (not in ``lanes``)
        self.parents: set[int] = set()  # numbers of actions seen to have children: only leaves are drawn
        self.open: dict[int, Action] = {}  # by number: started, not ended, not seen to have children
        self.swept_to = 0.0
        self.granted = 0.0  # units the run's rate lanes held at the last sweep
        self.dirty = False

    def _lane(self, name: str, kind: str) -> Lane:
        lane = self.lanes.get(name)
        if lane is None:
            if name == self.twin:
                return self._untwin()
            origin = self.state.started_at or self.state.created_at
            lane = self.lanes[name] = Lane(name, kind, origin)
        return lane

    def _untwin(self) -> Lane:
        """The twin group gets a lane of its own, a copy of the run lane so far."""
        run, name = self.lanes["run"], self.twin
        assert name is not None
        self.twin = None
        lane = self.lanes[name] = Lane(name, "group", run.origin)
        lane.width, lane.peaks, lane.level = run.width, list(run.peaks), run.level
        lane.busy, lane.last = run.busy, run.last
        lane.starts, lane.ends = list(run.starts), list(run.ends)
        return lane

    def _empty(self) -> bool:
        """No lane has seen a span yet (a run lane may exist, made by a batch with no leaf)."""
        run = self.lanes.get("run")
        return set(self.lanes) <= {"run"} and not (run and (run.starts or run.ends or run.peaks))

    def _run_and_group(self, group: str, starts: list[float], ends: list[float]) -> None:
        """Leaves of ``group``: they run in the run lane and in the group's."""
        if self.twin is None and self._empty():
            self.twin = group
        if group != self.twin:
            if self.twin is not None:
                self._untwin()
            self._lane(group, "group").add(starts, ends)
        self._lane("run", "run").add(starts, ends)

    def record(self, ended: list[Action], running: Iterable[Action], done: list[Any] | None = None) -> None:
        """Take a batch: actions that ended since the last one (``ended``, and the listener's fast-path
        rows ``done``, flat :data:`~.records.DONE_COLUMNS`), and those seen running now."""
        parents = self.parents
        opened = self.open
        for action in running:
            if action.started_at is not None and action.number not in parents:
                opened[action.number] = action
        # every parent first: one that ends in the batch of its children is not drawn as a leaf
        fathers = done[2::DONE_WIDTH] if done else []
        named = {parent.number for parent in set(map(_PARENT, ended)) if parent is not None}.union(fathers)
        parents.update(named)
        for number in named:
            opened.pop(number, None)
        if done and not self._one_map(done, fathers):
            self._rows(done)
        if ended and not self._one_map_of_actions(ended):
            self._actions(ended)
        if self.state.started_at is not None:  # a lane made earlier would start at the run's creation
            self._lane("run", "run")
        self.sweep()

    def _one_map(self, done: list[Any], fathers: list[int]) -> bool:
        """The usual batch, in C loops: leaves of one parent and one group.
        (Measured: a per-action loop here cost the writer, hence the engine, ~1 us an action.)"""
        groups = done[3::DONE_WIDTH]
        numbers = done[1::DONE_WIDTH]
        if (fathers.count(fathers[0]) != len(fathers) or groups.count(groups[0]) != len(groups)
                or not self.parents.isdisjoint(numbers)):
            return False
        self._leaves(numbers, groups[0], done[7::DONE_WIDTH], done[8::DONE_WIDTH])
        return True

    def _one_map_of_actions(self, ended: list[Action]) -> bool:
        """The same for actions off the fast path (a cached task's calls, say): leaves of one parent
        and one group that all ran, with no throttled tag."""
        parent, group = ended[0].parent, ended[0].group
        if parent is None or group is None or any(p.startswith("tag:") for p in self.state.pools):
            return False
        starts = list(map(_STARTED, ended))
        ends = list(map(_ENDED, ended))
        numbers = list(map(_NUMBER, ended))
        if (list(map(_PARENT, ended)).count(parent) != len(ended) or list(map(_GROUP, ended)).count(group) != len(ended)
                or None in starts or None in ends or 7 in map(_PHASE, ended)  # 7: Phase.CACHED
                or not self.parents.isdisjoint(numbers)):
            return False
        self._leaves(numbers, group.name, starts, ends)
        return True

    def _leaves(self, numbers: list[int], group: str, starts: list[float], ends: list[float]) -> None:
        """Leaves of one group that ended: no longer open, and drawn."""
        opened = self.open
        if opened:
            for number in opened.keys() & set(numbers):
                del opened[number]
        self._run_and_group(group, starts, ends)

    def _rows(self, done: list[Any]) -> None:
        """Fast-path rows one by one (several maps, or a row that is itself a parent)."""
        parents, opened = self.parents, self.open
        spans: dict[str, tuple[list[float], list[float]]] = {}  # group: starts, ends
        for at in range(0, len(done), DONE_WIDTH):
            number = done[at + 1]
            opened.pop(number, None)
            if number in parents:
                parents.discard(number)  # it ended after its children: none will name it again
                continue
            found = spans.get(done[at + 3])
            if found is None:
                found = spans[done[at + 3]] = ([], [])
            found[0].append(done[at + 7])
            found[1].append(done[at + 8])
        for group, (starts, ends) in spans.items():
            self._run_and_group(group, starts, ends)

    def _actions(self, ended: list[Action]) -> None:
        """Actions that ended off the fast path (failed, cached, with tags ...), one by one."""
        parents, opened = self.parents, self.open
        tagged = [p[4:] for p in self.state.pools if p.startswith("tag:")]
        spans: dict[str, tuple[list[float], list[float]]] = {}  # lane: starts, ends
        for action in ended:
            opened.pop(action.number, None)
            number = action.number
            if number in parents:
                parents.discard(number)
                continue
            began = action.started_at
            if began is None or action.phase == 7:  # never ran, or served from the cache (Phase.CACHED)
                continue
            ended_at = action.ended_at or began
            lanes = ["run"]
            if action.group is not None:
                lanes.append(action.group.name)
            lanes += [f"tag:{tag}" for tag in tagged if tag in action.tags]
            for name in lanes:
                found = spans.get(name)
                if found is None:
                    found = spans[name] = ([], [])
                found[0].append(began)
                found[1].append(ended_at)
        twin = self.twin
        if twin is not None and "run" in spans and len(spans["run"][0]) != len(spans.get(twin, ((),))[0]):
            self._untwin()  # a leaf outside the twin group, or in none (a throttled tag's lane is apart)
        for name, (starts, ends) in spans.items():
            if name == self.twin:
                continue  # the run lane's own spans
            kind = "run" if name == "run" else "tag" if name.startswith("tag:") and name not in self.state.groups else "group"
            self._lane(name, kind).add(starts, ends)

    def sweep(self) -> None:
        state = self.state
        if state.ended_at is not None and not self.open:
            watermark = _END
        else:
            starts = [a.started_at for a in list(self.open.values()) if a.number not in self.parents and a.phase < 3]
            watermark = min([time.time() - MARGIN, *starts])
        for lane in list(self.lanes.values()):
            if lane.sweep(watermark):
                self.dirty = True
                self.swept_to = max(self.swept_to, lane.last)
        granted = sum(lane.total for lane in list(state.rate_lanes.values()))
        if granted != self.granted:  # the rate pools' lanes (kept by the pools as they grant) moved
            self.granted = granted
            self.dirty = True

    def to_json(self) -> str:
        """The whole timeline as the run row keeps it (``runs.timeline``)."""
        state = self.state
        start = state.started_at or state.created_at
        end = state.ended_at or max(self.swept_to, start)
        capacities = {g.name: g.pool.capacity if g.pool is not None else None for g in list(state.groups.values())}
        pools = {name: pool.capacity for name, pool in list(state.pools.items())}
        series = []
        order = sorted(self.lanes.values(), key=lambda lane: ("run", "group", "tag").index(lane.kind))
        for lane in order:
            capacity = None if lane.kind == "run" else capacities.get(lane.name) if lane.kind == "group" else pools.get(lane.name)
            series.append(lane.series(capacity, end))
            if lane.kind == "run" and self.twin is not None:  # its twin group's series is the same
                series.append({**series[-1], "name": self.twin, "kind": "group", "capacity": capacities.get(self.twin)})
        series += [lane.series(recorded_limit(state.pools[name]), start, end)  # starts per second, per rate
                   for name, lane in list(state.rate_lanes.items()) if name in state.pools]
        self.dirty = False
        return json.dumps({"start": start, "end": end, "series": series})
