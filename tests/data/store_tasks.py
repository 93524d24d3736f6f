"""Tasks shared by the run-store tests and the child processes they start.

Both sides import this module, so a task has the same source, hence the same cache key, in every
process. Executions are appended to a log file under FLYTE_NB_HOME so that a test can tell what
really ran, whichever process ran it.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import flyte_nb as flyte

env = flyte.TaskEnvironment("store_tests")


def home() -> Path:
    return Path(os.environ["FLYTE_NB_HOME"])


def note(what: str) -> None:
    home().mkdir(parents=True, exist_ok=True)
    with open(home() / "executions.log", "a") as log:
        log.write(what + "\n")


def executions() -> list[str]:
    path = home() / "executions.log"
    return path.read_text().splitlines() if path.exists() else []


@env.task(cache="auto")
async def cached_square(x: int) -> int:
    note(f"cached_square {x}")
    return x * x


@env.task
async def maybe_fail(x: int) -> int:
    """Fails while a file ``fail-<x>`` exists in FLYTE_NB_HOME."""
    note(f"maybe_fail {x}")
    await asyncio.sleep(0)
    if (home() / f"fail-{x}").exists():
        raise ValueError(f"item {x} is bad")
    return x + 100


@env.task
async def pipeline(n: int) -> list[int]:
    squares = [s async for s in flyte.map.aio(cached_square, range(n))]
    with flyte.group("add"):
        added = await asyncio.gather(*(maybe_fail(x) for x in range(n)), return_exceptions=True)
    errors = [a for a in added if isinstance(a, BaseException)]
    if errors:
        raise errors[0]
    return [s + a for s, a in zip(squares, added)]


@env.task(retries=2)
async def third_time_lucky(key: str) -> str:
    """Fails on its first two attempts (counted in a file), succeeds on the third."""
    count = home() / f"attempts-{key}"
    tries = int(count.read_text()) + 1 if count.exists() else 1
    count.write_text(str(tries))
    if tries < 3:
        raise ConnectionError(f"attempt {tries} of {key} failed")
    return f"{key} after {tries}"


@env.task(tags=["io"])
async def slow(x: int, seconds: float) -> int:
    await asyncio.sleep(seconds)
    return x


@env.task
async def slow_map(n: int, fast: int) -> list[int]:
    """The first ``fast`` items finish at once, the others take a minute."""
    return [r async for r in flyte.map.aio(slow, range(n), [0.01 if i < fast else 60.0 for i in range(n)],
                                           concurrency=n)]


@env.task(cache="auto")
async def work(x: int) -> int:
    await asyncio.sleep(0.002)
    return 3 * x


@env.task
async def many(n: int, concurrency: int) -> int:
    return sum([r async for r in flyte.map.aio(work, range(n), concurrency=concurrency)])


@env.task
async def many_together(n: int, concurrency: int, me: str, other: str) -> int:
    """Half the map, then wait for the other kernel to be halfway too: both runs are surely writing at once."""
    total = sum([r async for r in flyte.map.aio(work, range(n // 2), concurrency=concurrency)])
    (home() / me).write_text("")
    while not (home() / other).exists():
        await asyncio.sleep(0.01)
    return total + sum([r async for r in flyte.map.aio(work, range(n // 2, n), concurrency=concurrency)])
