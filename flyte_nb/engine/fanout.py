"""Fan one call out over many inputs, lazily, with bounded memory.

Inputs are pulled only when a slot is free, and at most ``window`` results wait to be consumed,
so a 100,000-item map at concurrency 100 holds ~100 tasks, not 100,000 coroutines. Results come
in input order (like Flyte) or, with ``ordered=False``, as they complete.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

from .slots import SlotPool

Invoke = Callable[[int, tuple], Coroutine[Any, Any, Any]]


def _outcome(task: asyncio.Task[Any], return_exceptions: bool) -> Any:
    if task.cancelled():
        raise asyncio.CancelledError()
    error = task.exception()
    if error is None:
        return task.result()
    if return_exceptions:
        return error
    raise error


def _quiet(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # mark retrieved: no "exception was never retrieved" noise


async def fanout(
    invoke: Invoke,
    inputs: Iterator[tuple],
    pool: SlotPool,
    *,
    ordered: bool = True,
    return_exceptions: bool = True,
    window: int | None = None,
) -> AsyncIterator[Any]:
    """Yield ``invoke(i, args)`` for each ``args`` in ``inputs``, at most ``pool.capacity`` at once."""
    loop = asyncio.get_running_loop()
    if window is None and pool.capacity is not None:
        window = max(4 * pool.capacity, 64)
    live: dict[int, asyncio.Task[Any]] = {}
    done: dict[int, asyncio.Task[Any]] = {}
    ready: deque[asyncio.Task[Any]] = deque()
    wake: list[asyncio.Future[None] | None] = [None]
    launched = delivered = 0
    exhausted = False

    def finished(index: int, task: asyncio.Task[Any]) -> None:
        pool.release()
        del live[index]
        if ordered:
            done[index] = task
        else:
            ready.append(task)
        waiter = wake[0]
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def launch() -> None:
        nonlocal launched, exhausted
        while not exhausted and (window is None or launched - delivered < window) and pool.try_acquire():
            try:
                args = next(inputs)
            except StopIteration:
                exhausted = True
                pool.release()
                return
            except BaseException:
                pool.release()
                raise
            task = loop.create_task(invoke(launched, args))
            live[launched] = task
            task.add_done_callback(lambda t, i=launched: finished(i, t))
            launched += 1

    try:
        while True:
            launch()
            if ordered:
                while delivered in done:
                    task = done.pop(delivered)
                    delivered += 1
                    yield _outcome(task, return_exceptions)
                    launch()
            else:
                while ready:
                    task = ready.popleft()
                    delivered += 1
                    yield _outcome(task, return_exceptions)
                    launch()
            if exhausted and not live and not done and not ready:
                return
            wake[0] = loop.create_future()
            await wake[0]
            wake[0] = None
    finally:
        for task in tuple(live.values()):
            task.cancel()
            task.add_done_callback(_quiet)
        for task in (*done.values(), *ready):
            _quiet(task)
