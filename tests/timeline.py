"""Measure concurrency from recorded intervals, the way the issue's checks are stated."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from contextlib import contextmanager


def peak(intervals: Iterable[tuple[float, float]]) -> int:
    """The largest number of intervals open at one instant (an end before a start at ties)."""
    edges = []
    for start, end in intervals:
        edges.append((start, 1))
        edges.append((end, -1))
    edges.sort(key=lambda e: (e[0], e[1]))
    level = top = 0
    for _, step in edges:
        level += step
        top = max(top, level)
    return top


def overlap(intervals: Iterable[tuple[float, float]]) -> float:
    """Seconds during which two or more intervals were open at once."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
                   key=lambda e: (e[0], e[1]))
    level, since, total = 0, 0.0, 0.0
    for at, step in edges:
        if level >= 2:
            total += at - since
        level += step
        since = at
    return total


class Gauge:
    """Counts bodies running right now, per label, and remembers the peak and the intervals."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now: dict[str, int] = {}
        self.top: dict[str, int] = {}
        self.intervals: list[tuple[str, float, float]] = []

    @contextmanager
    def running(self, *labels: str):
        start = time.perf_counter()
        with self._lock:
            for label in labels:
                self.now[label] = self.now.get(label, 0) + 1
                self.top[label] = max(self.top.get(label, 0), self.now[label])
        try:
            yield
        finally:
            end = time.perf_counter()
            with self._lock:
                for label in labels:
                    self.now[label] -= 1
                    self.intervals.append((label, start, end))

    def peak_of(self, label: str) -> int:
        return self.top.get(label, 0)
