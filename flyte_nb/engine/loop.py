"""The engine loop: one asyncio loop on one daemon thread per kernel.

Runs execute here so that the notebook's own thread (and the kernel's loop) stay free: a cell
that starts a run returns at once and the user goes on typing while actions fan out.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from .bridge import await_only, drive
from .kernel import kernel
from .threads import current_call

T = TypeVar("T")
log = logging.getLogger("flyte_nb")


BREATH_EVERY = 0.005  # seconds of busy engine between breaths
BREATH = 0.0002  # a real sleep: long enough for a waiting thread to take the GIL


def _driven_task(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T], *,
                 context: contextvars.Context | None = None, **options: Any) -> asyncio.Task[T]:
    """Task factory of the engine loop: every task is driven, so sync waits work in any of them.

    The task and its driver share one context (the one asked for, else a copy of the caller's),
    and SystemExit/KeyboardInterrupt become an error of the task (``drive(contain=True)``).
    """
    engine().keep_fair()
    if context is None:
        context = contextvars.copy_context()
    return asyncio.Task(drive(coro, context, True), loop=loop, context=context, **options)


def plain_task(coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """A task for engine code that drives any user code it runs itself, such as an action's
    lifecycle (the backend drives the body): it skips the carrier of :func:`_driven_task` (two
    greenlet switches, a context copy and a driver per task; ~15 % of a trivial action's engine
    CPU). Call on the engine loop."""
    engine().keep_fair()
    return asyncio.Task(coro, loop=engine().loop)


class EngineLoop:
    """An asyncio loop running forever on a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.set_task_factory(_driven_task)
        self._breathing = False
        # Not waited for: work submitted before the loop turns is queued and runs once it does.
        self.thread = threading.Thread(target=self._main, name="flyte_nb-engine", daemon=True)
        self.thread.start()
        self._ident = self.thread.ident  # set by start(): on_thread() is asked on every async task call

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        while True:
            try:
                self.loop.run_forever()
                return  # stopped on purpose
            except BaseException as error:  # noqa: BLE001 - nothing a task does may stop the engine
                # asyncio re-raises SystemExit/KeyboardInterrupt out of run_forever when a task
                # that is nobody's action raises them; the task keeps the error, the loop goes on.
                log.warning("flyte_nb: a task on the engine loop raised %r; the engine goes on", error)

    def keep_fair(self) -> None:
        """While the engine is busy, let the kernel's other threads run (see ``_breathe``)."""
        if not self._breathing:
            self._breathing = True
            self.loop.call_later(BREATH_EVERY, self._breathe)

    def _breathe(self) -> None:
        """Hand the GIL over for a moment if the loop is busy.

        A busy loop gives the GIL back at every zero-timeout poll and takes it again before a
        waiting thread wakes, so CPython's switch interval never helps: the notebook's own thread
        (cells, output) could wait hundreds of milliseconds. A short real sleep every few
        milliseconds costs a busy engine ~4 % and an idle one nothing (the breaths stop).
        """
        if self.loop._ready:  # type: ignore[attr-defined]  # more work queued: we are busy
            time.sleep(BREATH)
            self.loop.call_later(BREATH_EVERY, self._breathe)
        else:
            self._breathing = False

    def on_thread(self) -> bool:
        """True when called from the engine thread itself."""
        return threading.get_ident() == self._ident

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Schedule ``fn(*args)`` on the engine loop from any thread."""
        self.loop.call_soon_threadsafe(fn, *args)

    def submit(
        self,
        coro: Coroutine[Any, Any, T],
        context: contextvars.Context | None = None,
        on_task: Callable[[asyncio.Task[T]], Any] | None = None,
    ) -> concurrent.futures.Future[T]:
        """Start ``coro`` as a task on the engine loop, in ``context``; return a thread-safe future.

        Unlike ``asyncio.run_coroutine_threadsafe`` this keeps the caller's context variables, so
        work submitted from a task body's thread still knows its run and parent action.
        """
        result: concurrent.futures.Future[T] = concurrent.futures.Future()

        def start() -> None:
            if result.cancelled():
                coro.close()
                return
            task = context.run(self.loop.create_task, coro) if context is not None else self.loop.create_task(coro)
            if on_task is not None:
                on_task(task)
            task.add_done_callback(lambda t: _copy_outcome(t, result))
            result.add_done_callback(lambda f: f.cancelled() and self.loop.call_soon_threadsafe(task.cancel))

        self.loop.call_soon_threadsafe(start)
        return result


def _copy_outcome(task: asyncio.Task[T], future: concurrent.futures.Future[T]) -> None:
    if future.done():
        return
    if task.cancelled():
        future.cancel()
    elif task.exception() is not None:
        future.set_exception(task.exception())
    else:
        future.set_result(task.result())


_kernel = kernel()


def engine() -> EngineLoop:
    """The kernel's engine loop, started on first use."""
    loop = _kernel.engine
    return loop if loop is not None else _kernel.start_engine(EngineLoop)


def block_on(
    coro: Coroutine[Any, Any, T],
    on_task: Callable[[asyncio.Task[T]], Any] | None = None,
) -> T:
    """Run ``coro`` on the engine loop and wait for it from synchronous code.

    From a task body's worker thread this blocks that thread; from an async body on the engine
    thread it suspends only that body (see :mod:`.bridge`).
    """
    loop = engine()
    if loop.on_thread():
        return await_only(coro)
    future = loop.submit(coro, contextvars.copy_context(), on_task)
    call = current_call()
    if call is not None:
        call.adopt(future)
    try:
        return future.result()
    except BaseException:
        future.cancel()
        raise
