"""Cluster-scope rates: one GCRA budget for every kernel and process using a Dask scheduler.

The state lives on the scheduler (``scheduler_rates``, shipped by value); each try is one
``run_on_scheduler`` call, and a waiter sleeps until the moment its grant can conform, so across
clients the order is the order of waking (the limit always holds). Used by
``flyte_nb.RateLimiter(..., scope="cluster")``; runs on the engine loop.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import cloudpickle

from ...engine.grant_lanes import Lanes
from ...engine.rates import Rate, RateStatistics
from ..base import get_backend
from . import scheduler_rates

cloudpickle.register_pickle_by_value(scheduler_rates)
_settler = ThreadPoolExecutor(1, thread_name_prefix="flyte_nb-cluster-settle")  # in order, off the caller's thread


class ClusterRatePool:
    """A rate shared through the Dask scheduler of the dask backend's connection."""

    kind = "rate"
    capacity = None

    def __init__(self, name: str, rate: Rate) -> None:
        self.name = f"limiter:{name}@cluster"
        self.key = f"flyte_nb/rate/{name}"
        self.rate = rate
        self.granted = 0.0  # by this process
        self.waiting = 0
        self._available: float | None = None
        self._recent: deque[tuple[float, float]] = deque()
        self.lanes = Lanes()  # the timelines of this process's runs that use it

    def set_rate(self, rate: Rate) -> None:
        self.rate = rate  # sent with the next try

    async def _client(self):  # noqa: ANN202 - a distributed.Client
        return (await get_backend("dask").connection()).client

    async def acquire(self, cost: float = 1) -> bool:
        client = await self._client()
        self.waiting += 1
        try:
            while True:
                rate = self.rate
                attempt = asyncio.ensure_future(asyncio.to_thread(
                    client.run_on_scheduler, scheduler_rates.take, self.key, cost, rate.interval, rate.burst))
                try:
                    wait = await asyncio.shield(attempt)
                except asyncio.CancelledError:  # the try goes on at the scheduler: refund what it took
                    attempt.add_done_callback(lambda f: f.cancelled() or f.exception() or f.result() or self.settle(cost, 0))
                    raise
                if wait == 0.0:
                    self.granted += cost
                    self._recent.append((time.time(), cost))
                    if self.lanes.lanes:
                        self.lanes.add(cost)
                    return True
                await asyncio.sleep(wait)
        finally:
            self.waiting -= 1

    def settle(self, charged: float, actual: float) -> None:
        delta = actual - charged
        if not delta:
            return
        client = get_backend("dask").client
        if client is not None:
            _settler.submit(self._adjust, client, delta)
        self.granted += delta
        self._recent.append((time.time(), delta))
        if self.lanes.lanes:
            self.lanes.add(delta)

    def _adjust(self, client, delta: float) -> None:  # noqa: ANN001 - a distributed.Client
        self._available = client.run_on_scheduler(scheduler_rates.adjust, self.key, delta)

    def statistics(self) -> RateStatistics:
        now, rate = time.time(), self.rate
        while self._recent and self._recent[0][0] < now - rate.window:
            self._recent.popleft()
        used = max(0.0, sum(c for _, c in self._recent))
        available = self._available if self._available is not None else float(rate.burst)
        return RateStatistics(self.name, round(rate.limit * rate.window / rate.per, 3), round(used, 3), self.waiting,
                              rate.limit / rate.per, round(available, 3), round(used / rate.window, 3))

    def __repr__(self) -> str:
        return f"<ClusterRatePool {self.key!r} {self.rate!r}>"
