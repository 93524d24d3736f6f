"""The engine loop: one asyncio loop on one daemon thread per kernel.

Runs execute here so that the notebook's own thread (and the kernel's loop) stay free: a cell
that starts a run returns at once and the user goes on typing while actions fan out.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import gc
import logging
import os
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from .bridge import await_only, drive
from .kernel import kernel
from .threads import current_call

T = TypeVar("T")
log = logging.getLogger("flyte_nb")


BUSY_SWITCH_INTERVAL = 0.001  # CPython's switch interval while the engine is busy (its default: 5 ms)
BUSY_CHECK_EVERY = 0.005  # seconds between checks that the engine is still busy
BUSY_GC_THRESHOLD = 10_000  # young objects between collections while the engine is busy (CPython's default: 700)
ENGINE_NICE = 10  # how far below the kernel's own threads the engine thread runs (Linux); FLYTE_NB_ENGINE_NICE


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
        self._busy = False
        self._kernel_interval = sys.getswitchinterval()  # what to go back to when the engine is idle
        self._kernel_gc = gc.get_threshold()
        # Not waited for: work submitted before the loop turns is queued and runs once it does.
        self.thread = threading.Thread(target=self._main, name="flyte_nb-engine", daemon=True)
        self.thread.start()
        self._ident = self.thread.ident  # set by start(): on_thread() is asked on every async task call

    def _main(self) -> None:
        _step_back()
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
        """While the engine is busy, a thread that wants the GIL gets it within a millisecond, and
        the garbage collector runs less often.

        A cell's round trip is some twenty hand-offs between the kernel's threads (shell channel,
        main, IOPub), and each one waits for a busy engine to give up the GIL: up to CPython's
        switch interval, 5 ms (measured: a 1M-action run made ``1 + 1`` answer in 50-90 ms at a
        load of 8-17 on 2 cores, against 15-30 ms idle). While work is queued the interval is
        1 ms; back to the kernel's own once the engine is idle. (The polls of a busy loop give
        the GIL back too, but a waiting thread rarely wins it there: the switch interval is what
        hands it over.) Nobody pays when nobody waits: the interval only matters to a waiter. It
        replaces a 0.2 ms sleep every 5 ms, which on a loaded machine lasted over a millisecond.

        A busy run keeps what it allocates (actions, and with ``gather`` a task per call made up
        front), so at CPython's 700 young objects per collection most collections find nothing to
        free, and every tenth of the tenth walks the whole heap (15-50 ms each, a 10,000-call
        ``gather`` got one per run): a few microseconds per action. While busy, a collection
        comes every ``BUSY_GC_THRESHOLD`` young objects instead (``benchmarks/bench_core.py``
        section 4, "gather + Semaphore": 38.6 to 26.1 µs a call); garbage waits a little longer, never unbounded.
        """
        if not self._busy:
            self._busy = True
            self._kernel_interval = sys.getswitchinterval()
            if self._kernel_interval > BUSY_SWITCH_INTERVAL:
                sys.setswitchinterval(BUSY_SWITCH_INTERVAL)
            self._kernel_gc = gc.get_threshold()
            if 0 < self._kernel_gc[0] < BUSY_GC_THRESHOLD:  # 0: the collector is off, leave it so
                gc.set_threshold(BUSY_GC_THRESHOLD, *self._kernel_gc[1:])
            self.loop.call_later(BUSY_CHECK_EVERY, self._still_busy)

    def _still_busy(self) -> None:
        if self.loop._ready:  # type: ignore[attr-defined]  # more work queued: we are busy
            self.loop.call_later(BUSY_CHECK_EVERY, self._still_busy)
            return
        self._busy = False
        # back to the kernel's own settings, unless someone else has changed them meanwhile
        if self._kernel_interval > BUSY_SWITCH_INTERVAL and abs(sys.getswitchinterval() - BUSY_SWITCH_INTERVAL) < 1e-9:
            sys.setswitchinterval(self._kernel_interval)
        threshold = gc.get_threshold()
        if threshold[0] == BUSY_GC_THRESHOLD and self._kernel_gc[0] != BUSY_GC_THRESHOLD:
            gc.set_threshold(self._kernel_gc[0], *threshold[1:])

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


def _step_back() -> None:
    """Run the engine thread at a lower CPU priority than the kernel's own threads (Linux only).

    The kernel's threads share its CPU time with the engine (a session's or a container's
    share: what other processes get does not change). While the engine is busy, each thread of a
    cell's round trip that wakes up (to read a message, to publish one) waited for the engine's
    time slice to end before it ran: run-queue waits of 25 ms per cell on the main thread against
    4 ms idle. A nice engine is preempted at once. Work the engine starts (sync bodies' threads,
    worker processes) inherits its priority: a run is the kernel's background work.
    ``FLYTE_NB_ENGINE_NICE=0`` keeps the kernel's priority.
    """
    try:
        nice = int(os.environ.get("FLYTE_NB_ENGINE_NICE", ENGINE_NICE))
    except ValueError:
        log.warning("flyte_nb: FLYTE_NB_ENGINE_NICE must be a whole number (0 to 19); using %d", ENGINE_NICE)
        nice = ENGINE_NICE
    if nice <= 0 or not sys.platform.startswith("linux"):  # elsewhere the nice value is the whole process's
        return
    thread = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + nice))
    except OSError as error:  # a sandbox may forbid it: the engine runs as it is
        log.debug("flyte_nb: could not lower the engine thread's priority: %s", error)


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
