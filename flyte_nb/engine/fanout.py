"""Fan one call out over many inputs, lazily, with bounded memory.

Inputs are pulled only when a slot is free, and at most ``window`` results wait to be consumed,
so a 100,000-item map at concurrency 100 holds ~100 tasks, not 100,000 coroutines. Results come
in input order (like Flyte) or, with ``ordered=False``, as they complete.

Two ways to consume a :class:`Fanout`, both on the engine loop: ``async for`` (``map.aio``), one
result at a time, and :meth:`Fanout.batch`, every result ready at that moment in one list. Sync
code (``map`` in a sync body on a worker thread, or in an async body through the greenlet bridge)
uses batches, so that it crosses to the loop once per batch instead of once per item.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

from .slots import SlotPool

Invoke = Callable[[int, tuple], Coroutine[Any, Any, Any]]


def _quiet(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # mark retrieved: no "exception was never retrieved" noise


class Fanout:
    """``invoke(i, args)`` for each ``args`` of ``inputs``, at most ``pool.capacity`` at once."""

    def __init__(self, invoke: Invoke, inputs: Iterator[tuple], pool: SlotPool, *, ordered: bool = True,
                 return_exceptions: bool = True, window: int | None = None,
                 spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]] | None = None) -> None:
        """``spawn`` makes the task of each call (default: the loop's ``create_task``)."""
        if window is None and pool.capacity is not None:
            window = max(4 * pool.capacity, 64)
        self._loop: asyncio.AbstractEventLoop | None = None  # the consumer's, found when it first asks
        self._invoke = invoke
        self._spawn = spawn
        self._inputs = inputs
        self._pool = pool
        self._ordered = ordered
        self._return_exceptions = return_exceptions
        self._window = window
        self._live: dict[int, asyncio.Task[Any]] = {}
        self._done: dict[int, asyncio.Task[Any]] = {}  # finished, ahead of the next index (ordered)
        self._ready: deque[asyncio.Task[Any]] = deque()  # finished, in completion order (unordered)
        self._wake: asyncio.Future[None] | None = None
        self._launched = self._delivered = 0
        self._exhausted = False
        self._failure: BaseException | None = None  # raised by the next batch() (return_exceptions=False)
        self.closed = False

    # ------------------------------------------------------------------ engine side
    def _finished(self, index: int, task: asyncio.Task[Any]) -> None:
        self._pool.release()
        del self._live[index]
        if self.closed:
            _quiet(task)
            return
        if self._ordered:
            self._done[index] = task
        else:
            self._ready.append(task)
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    def _launch(self) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._spawn = self._spawn or self._loop.create_task
        window, pool = self._window, self._pool
        while not self._exhausted and (window is None or self._launched - self._delivered < window) \
                and pool.try_acquire():
            try:
                args = next(self._inputs)
            except StopIteration:
                self._exhausted = True
                pool.release()
                return
            except BaseException:
                pool.release()
                raise
            index = self._launched
            task = self._spawn(self._invoke(index, args))  # type: ignore[misc]
            self._live[index] = task
            task.add_done_callback(lambda t, i=index: self._finished(i, t))
            self._launched += 1

    def _pop(self) -> asyncio.Task[Any] | None:
        """The next deliverable finished task, if any."""
        if self._ordered:
            task = self._done.pop(self._delivered, None)
        else:
            task = self._ready.popleft() if self._ready else None
        if task is not None:
            self._delivered += 1
        return task

    @property
    def _spent(self) -> bool:
        return self._exhausted and not self._live and not self._done and not self._ready

    async def _wait(self) -> None:
        self._wake = self._loop.create_future()  # type: ignore[union-attr]  # _launch ran first
        try:
            await self._wake
        finally:
            self._wake = None

    def _outcome(self, task: asyncio.Task[Any]) -> Any:
        if task.cancelled():
            raise asyncio.CancelledError()
        error = task.exception()
        if error is None:
            return task.result()
        if self._return_exceptions:
            return error
        raise error

    # ------------------------------------------------------------------ consumers
    async def __aiter__(self) -> AsyncIterator[Any]:
        """One result at a time; the window refills as each is consumed."""
        try:
            while True:
                self._launch()
                while (task := self._pop()) is not None:
                    yield self._outcome(task)
                    self._launch()
                if self._spent:
                    return
                await self._wait()
        finally:
            self.close()

    async def batch(self) -> list[Any] | None:
        """Every result ready now (waiting for at least one); ``None`` once all were delivered.

        With ``return_exceptions=False`` a batch ends before the first error, which the next call
        raises. Cancelling the wait closes the fan-out: its consumer is gone.
        """
        if self._failure is not None:
            failure, self._failure = self._failure, None
            self.close()
            raise failure
        try:
            while True:
                self._launch()
                results: list[Any] = []
                while (task := self._pop()) is not None:
                    try:
                        results.append(self._outcome(task))
                    except BaseException as error:  # noqa: BLE001 - raised after the results before it
                        if not results:
                            raise
                        self._failure = error
                        return results
                    self._launch()
                if results:
                    return results
                if self._spent:
                    self.closed = True
                    return None
                await self._wait()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Cancel what is in flight and forget what was not delivered; idempotent."""
        if self.closed:
            return
        self.closed = True
        self._exhausted = True
        for task in tuple(self._live.values()):
            task.cancel()
            task.add_done_callback(_quiet)
        for task in (*self._done.values(), *self._ready):
            _quiet(task)
        self._done.clear()
        self._ready.clear()


def fanout(invoke: Invoke, inputs: Iterator[tuple], pool: SlotPool, *, ordered: bool = True,
           return_exceptions: bool = True, window: int | None = None) -> AsyncIterator[Any]:
    """The results of a :class:`Fanout` as an async generator (must be called on the loop)."""
    return Fanout(invoke, inputs, pool, ordered=ordered, return_exceptions=return_exceptions,
                  window=window).__aiter__()
