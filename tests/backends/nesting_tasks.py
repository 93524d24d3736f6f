"""The seed scenarios written the way the seeds write them: driver and children in ONE environment.

``build(name, **environment_options)`` defines the tasks inside a function so that they travel by
value (a container cannot import this test module). Bodies stamp ``time.monotonic()`` (one clock
for every process and container of the host) so that overlap is measured where the code ran.
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


class ArgError(Exception):
    """An error whose ``__init__`` takes other arguments than its ``args``."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(f"error {code}: {detail}")
        self.code = code
        self.detail = detail


def build(name: str, **options: Any) -> SimpleNamespace:
    env = flyte.TaskEnvironment(name, **options)

    @env.task
    async def nap(i: int) -> tuple[float, float]:
        start = time.monotonic()
        await asyncio.sleep(0.5)
        return start, time.monotonic()

    @env.task
    def nap_sync(i: int) -> tuple[float, float]:
        start = time.monotonic()
        time.sleep(0.5)
        return start, time.monotonic()

    @env.task
    async def under_semaphore(n: int) -> list:
        semaphore = asyncio.Semaphore(3)

        async def one(i: int) -> Any:
            async with semaphore:
                return await nap(i)

        return await asyncio.gather(*(one(i) for i in range(n)))

    @env.task
    async def under_map(n: int) -> list:
        return list(flyte.map(nap_sync, range(n), concurrency=3))

    @env.task
    async def under_map_aio(n: int) -> list:
        return [r async for r in flyte.map.aio(nap, range(n), concurrency=3)]

    @env.task(tags=["print"])
    async def speaker(name: str) -> tuple[float, float]:
        start = time.monotonic()
        await asyncio.sleep(0.2)
        return start, time.monotonic()

    @env.task
    async def quiet(name: str) -> tuple[float, float]:
        start = time.monotonic()
        await asyncio.sleep(0.2)
        return start, time.monotonic()

    @env.task
    async def speakers() -> list:
        return await asyncio.gather(speaker("ann"), speaker("bob"), quiet("cy"))

    @env.task
    async def work(label: str) -> tuple[str, float, float]:
        start = time.monotonic()
        await asyncio.sleep(0.1)
        return label, start, time.monotonic()

    @env.task
    async def tag_groups() -> list:
        calls = []
        with flyte.tags("group A"):
            calls += [work(f"A{i}") for i in range(3)]
            with flyte.tags("group B"):
                calls += [work(f"AB{i}") for i in range(2)]
        with flyte.tags("group B"):
            calls += [work(f"B{i}") for i in range(3)]
            with flyte.tags("group C"):
                calls += [work(f"BC{i}") for i in range(2)]
        with flyte.tags("group C"):
            calls += [work(f"C{i}") for i in range(2)]
        return await asyncio.gather(*calls)

    @env.task(tags=["db"])
    async def query(i: int) -> tuple[float, float]:
        start = time.monotonic()
        await asyncio.sleep(0.05)
        return start, time.monotonic()

    @env.task(tags=["db"])
    async def parent_in_db(n: int) -> list:
        return await asyncio.gather(*(query(i) for i in range(n)))

    @env.task
    async def parents(n: int) -> list:
        return await asyncio.gather(*(parent_in_db(n) for _ in range(3)))

    @env.task(timeout=1)
    async def too_slow() -> str:
        await asyncio.sleep(30)
        return "never"

    @env.task
    async def times_out() -> str:
        try:
            await too_slow()
        except flyte.ActionTimeoutError as error:
            return f"{type(error).__name__}: {error.seconds:g}"
        return "no timeout"

    @env.task
    def raises(kind: str) -> None:
        if kind == "value":
            raise ValueError("bad value")
        raise ArgError(7, "no such thing")

    @env.task
    async def catches(kind: str) -> tuple:
        try:
            raises(kind)
        except ArgError as error:
            return "ArgError", error.code, error.detail
        except ValueError as error:
            return "ValueError", str(error)
        return ("nothing",)

    @env.task
    async def lets_it_fly(kind: str) -> None:
        await raises.aio(kind)

    return SimpleNamespace(**{k: v for k, v in locals().items() if isinstance(v, flyte.TaskTemplate)}, env=env)
