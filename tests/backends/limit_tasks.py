"""Limits used inside task bodies, driver and children in ONE environment (as ``nesting_tasks``).

``build(name, **environment_options)`` defines the tasks inside a function so that they travel by
value (a container cannot import this test module). Bodies stamp ``time.monotonic()`` (one clock
for every process and container of the host) where the code ran.
"""

from __future__ import annotations

import asyncio
import sys
import time
from types import SimpleNamespace
from typing import Any

import cloudpickle

import flyte_nb as flyte

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # containers cannot import the tests


def build(name: str, **options: Any) -> SimpleNamespace:
    env = flyte.TaskEnvironment(name, **options)
    db = flyte.Semaphore(2, name=f"{name}-db")  # made in the kernel: shipped with the bodies that use it
    api = f"{name}-api"

    @env.task
    async def call_api(i: int, n: int, scope: str = "kernel") -> list[float]:
        limiter = flyte.RateLimiter(api, 10, per="1s", scope=scope)  # made in the body: the kernel's budget
        stamps = []
        for _ in range(n):
            async with limiter:
                stamps.append(time.monotonic())
        return stamps

    @env.task
    def call_api_sync(i: int, n: int) -> list[float]:
        limiter = flyte.RateLimiter(api, 10, per="1s")
        stamps = []
        for _ in range(n):
            with limiter:
                stamps.append(time.monotonic())
        return stamps

    @env.task
    async def machine_callers(k: int, n: int) -> list[list[float]]:
        """A machine-scope limiter from containers too: the kernel's machine, not the container's."""
        return list(await asyncio.gather(*(call_api(i, n, "machine") for i in range(k))))

    @env.task
    async def callers(k: int, n: int) -> list[list[float]]:
        calls = [call_api(i, n) if i % 2 else call_api_sync.aio(i, n) for i in range(k)]
        return list(await asyncio.gather(*calls))

    @env.task
    async def refunded(n: int) -> float:
        """``n`` grants of a 2/s limiter, each settled at 0 (nothing used): all come at once."""
        limiter = flyte.RateLimiter(f"{name}-tpm", 2, per="1s")
        start = time.monotonic()
        for _ in range(n):
            grant = await limiter.acquire(1)
            grant.settle(0)
            await asyncio.sleep(0.02)  # the refund reaches the kernel before the next ask
        return time.monotonic() - start

    @env.task
    async def query(i: int) -> tuple[float, float]:
        async with db:
            start = time.monotonic()
            await asyncio.sleep(0.3)
            return start, time.monotonic()

    @env.task
    async def queries(n: int) -> list[tuple[float, float]]:
        return list(await asyncio.gather(*(query(i) for i in range(n))))

    @env.task(timeout=1.5)
    async def hog(i: int) -> None:
        """Takes a slot and never gives it back: its timeout must."""
        await db.acquire()
        await asyncio.sleep(60)

    @env.task
    async def hogs_then_queries(n: int) -> list[tuple[float, float]]:
        failed = await asyncio.gather(hog(0), hog(1), return_exceptions=True)
        assert all(isinstance(f, flyte.ActionTimeoutError) for f in failed), failed
        return list(await asyncio.gather(*(query(i) for i in range(n))))

    @env.task
    async def ping(i: int) -> int:
        return i

    @env.task
    async def rated_map(n: int) -> list[int]:
        return list(flyte.map(ping, range(n), rate=flyte.Rate(10, per="1s")))

    return SimpleNamespace(name=name, api=api, callers=callers, refunded=refunded, queries=queries,
                           hogs_then_queries=hogs_then_queries, rated_map=rated_map,
                           machine_callers=machine_callers)
