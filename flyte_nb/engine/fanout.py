"""Fan one call out over many inputs, lazily, with bounded memory.

Inputs are pulled only when a slot is free, and at most ``window`` results wait to be consumed,
so a 100,000-item map at concurrency 100 holds ~100 worker tasks, not 100,000 coroutines. Results come
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

_NOTHING: Any = object()
Invoke = Callable[[int, tuple], Coroutine[Any, Any, Any]]


class _Failed:
    """A call's error, stored in place of its result (results themselves are stored bare)."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _quiet(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # mark retrieved: no "exception was never retrieved" noise


class Fanout:
    """``invoke(i, args)`` for each ``args`` of ``inputs``, at most ``pool.capacity`` at once.

    With a capacity, the calls run on at most ``capacity`` worker tasks that each take the next
    input as soon as their call is done (no task, done-callback and loop turn per item, and no
    wait for the consumer to start the next call while the window has room); without one, each
    call gets a task of its own.
    """

    def __init__(self, invoke: Invoke, inputs: Iterator[tuple], pool: SlotPool, *, ordered: bool = True,
                 return_exceptions: bool = True, window: int | None = None,
                 spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]] | None = None) -> None:
        """``spawn`` makes each worker task (default: the loop's ``create_task``)."""
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
        self._workers: set[asyncio.Task[Any]] = set()
        self._done: dict[int, Any] = {}  # finished, ahead of the next index (ordered): result or _Failed
        self._ready: deque[Any] = deque()  # finished, in completion order (unordered)
        self._wake: asyncio.Future[None] | None = None
        self._launched = self._delivered = 0
        self._exhausted = False
        self._failure: BaseException | None = None  # raised by the next batch() (return_exceptions=False)
        self._input_error: BaseException | None = None  # the inputs raised while a worker took the next one
        self._capped = pool.capacity is not None
        self._unstarted = 0  # workers spawned that have not begun their first call
        self.closed = False

    # ------------------------------------------------------------------ engine side
    def _take(self) -> tuple[int, tuple] | None:
        """The next input and its index, with a slot held for it; None when there is none to start now."""
        window = self._window
        if self._exhausted or self.closed or (window is not None and self._launched - self._delivered >= window) \
                or not self._pool.try_acquire():
            return None
        try:
            args = next(self._inputs)
        except StopIteration:
            self._exhausted = True
            self._pool.release()
            return None
        except BaseException:
            self._pool.release()
            raise
        index = self._launched
        self._launched += 1
        return index, args

    async def _work(self, index: int, args: tuple) -> None:
        """One worker: call, store the outcome, take the next input while there is room."""
        invoke, pool, done = self._invoke, self._pool, self._done
        ordered = self._ordered
        self._unstarted -= 1
        while True:
            try:
                outcome = await invoke(index, args)
            except asyncio.CancelledError as error:  # this worker is stopped: its call ends cancelled
                pool.release()
                self._store(index, _Failed(error), ordered, done)
                raise
            except GeneratorExit:  # the worker is being closed, not failing
                pool.release()
                raise
            except BaseException as error:  # noqa: BLE001 - delivered in its place
                outcome = _Failed(error)
            pool.release()
            self._store(index, outcome, ordered, done)
            if not self._capped:  # unlimited: one task per call
                return
            if self._unstarted:  # a call that never suspended: let the workers spawned with it begin
                await asyncio.sleep(0)  # their calls first, so actions start (and are numbered) in input order
            try:
                taken = self._take()
            except BaseException as error:  # noqa: BLE001 - the inputs failed: the consumer raises it
                self._input_error = error
                self._exhausted = True
                self._alert()
                return
            if taken is None:
                return
            index, args = taken

    def _store(self, index: int, outcome: Any, ordered: bool, done: dict[int, Any]) -> None:
        if self.closed:
            return
        if ordered:
            done[index] = outcome
        else:
            self._ready.append(outcome)
        self._alert()

    def _alert(self) -> None:
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    def _launch(self) -> None:
        if self._input_error is not None:
            error, self._input_error = self._input_error, None
            raise error
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._spawn = self._spawn or self._loop.create_task
        workers = self._workers
        while (taken := self._take()) is not None:
            self._unstarted += 1
            task = self._spawn(self._work(*taken))  # type: ignore[misc]
            workers.add(task)
            task.add_done_callback(self._retire)

    def _retire(self, task: asyncio.Task[Any]) -> None:
        self._workers.discard(task)
        _quiet(task)

    def _pop(self) -> Any:
        """The next deliverable outcome, or ``_NOTHING``."""
        if self._ordered:
            outcome = self._done.pop(self._delivered, _NOTHING)
        else:
            outcome = self._ready.popleft() if self._ready else _NOTHING
        if outcome is not _NOTHING:
            self._delivered += 1
        return outcome

    @property
    def _spent(self) -> bool:
        return self._exhausted and self._delivered == self._launched

    async def _wait(self) -> None:
        self._wake = self._loop.create_future()  # type: ignore[union-attr]  # _launch ran first
        try:
            await self._wake
        finally:
            self._wake = None

    def _outcome(self, outcome: Any) -> Any:
        if type(outcome) is not _Failed:
            return outcome
        error = outcome.error
        if isinstance(error, asyncio.CancelledError):
            raise asyncio.CancelledError()
        if self._return_exceptions:
            return error
        raise error

    # ------------------------------------------------------------------ consumers
    async def __aiter__(self) -> AsyncIterator[Any]:
        """One result at a time; the window refills as each is consumed."""
        try:
            while True:
                self._launch()
                while (outcome := self._pop()) is not _NOTHING:
                    yield self._outcome(outcome)
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
                while (outcome := self._pop()) is not _NOTHING:
                    try:
                        results.append(self._outcome(outcome))
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
        for task in tuple(self._workers):
            task.cancel()
        self._done.clear()
        self._ready.clear()


def fanout(invoke: Invoke, inputs: Iterator[tuple], pool: SlotPool, *, ordered: bool = True,
           return_exceptions: bool = True, window: int | None = None) -> AsyncIterator[Any]:
    """The results of a :class:`Fanout` as an async generator (must be called on the loop)."""
    return Fanout(invoke, inputs, pool, ordered=ordered, return_exceptions=return_exceptions,
                  window=window).__aiter__()
