"""Sync task bodies on worker threads that a timeout or an abort can really stop.

A thread cannot be killed, but CPython can raise an exception in it at its next bytecode
(``PyThreadState_SetAsyncExc``). A timed-out or aborted sync body is abandoned at once (its slots
are freed, its result discarded) and interrupted so that it stops soon after: pure-Python loops
stop within microseconds, a blocking C call (``time.sleep``) when it returns. Child work that
the body was waiting for is cancelled too. For a hard kill use the process backend.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import queue
import threading
from collections.abc import Callable
from contextvars import Context
from typing import Any

from .kernel import kernel

_MAX_THREADS = 1024  # sync bodies may block on children; a small pool could deadlock
_local = threading.local()
_kernel = kernel()


class _DaemonPool:
    """Worker threads for sync bodies that never hold up interpreter exit.

    ``ThreadPoolExecutor`` joins its threads at exit, so a body abandoned by a 1 s timeout but
    still in ``time.sleep(30)`` kept the process alive for 30 s. These threads are daemons.
    """

    def __init__(self, max_threads: int, prefix: str) -> None:
        self._jobs: queue.SimpleQueue[tuple[concurrent.futures.Future[Any], Callable[[], Any]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # threads waiting for a job and not yet promised one
        self._threads = 0
        self._max = max_threads
        self._prefix = prefix

    def submit(self, fn: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            if self._idle:
                self._idle -= 1  # that thread takes this job
            elif self._threads < self._max:
                self._threads += 1
                threading.Thread(target=self._work, name=f"{self._prefix}-{self._threads}", daemon=True).start()
        self._jobs.put((future, fn))
        return future

    def _work(self) -> None:
        while True:
            try:
                future, fn = self._jobs.get()
                if future.set_running_or_notify_cancel():
                    try:
                        result = fn()
                    except BaseException as error:  # noqa: BLE001 - handed to the awaiting action
                        future.set_exception(error)
                    else:
                        future.set_result(result)
                del future, fn
            except BaseException:  # noqa: BLE001 - a late interrupt must not lose the thread
                pass
            with self._lock:
                self._idle += 1




class SyncThreads(_DaemonPool):
    """The kernel's threads for sync task bodies (a :class:`.kernel.Kernel` part, made on first use)."""

    def __init__(self) -> None:
        super().__init__(_MAX_THREADS, "flyte_nb-sync")


class ActionInterrupted(BaseException):
    """Raised inside a sync body that was abandoned by a timeout or an abort.

    A ``BaseException`` so that the user's ``except Exception`` does not swallow it.
    """


def _raise_in(thread_id: int, error: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(error) if error is not None else None
    )


class SyncCall:
    """One sync body on a worker thread, interruptible from the engine loop."""

    __slots__ = ("_context", "_fn", "_args", "_kwargs", "_lock", "_thread_id", "_state", "children")

    def __init__(self, context: Context, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        self._context = context
        self._fn = fn
        self._args = args
        self._kwargs = kwargs
        self._lock = threading.Lock()
        self._thread_id: int | None = None
        self._state = "new"  # new → running → finished; or interrupted
        self.children: set[concurrent.futures.Future[Any]] = set()

    def run(self) -> Any:
        with self._lock:
            if self._state == "interrupted":
                return None
            self._state = "running"
            self._thread_id = threading.get_ident()
        _local.call = self
        try:
            try:
                return self._context.run(self._fn, *self._args, **self._kwargs)
            finally:
                _local.call = None
                with self._lock:
                    if self._state == "interrupted":
                        _raise_in(self._thread_id, None)  # drop an exception not yet delivered
                    self._state = "finished"
        except ActionInterrupted:
            _local.call = None
            return None  # nobody waits for this result any more

    def adopt(self, child: concurrent.futures.Future[Any]) -> None:
        """Cancel ``child`` (work this body waits for) when the body is interrupted."""
        with self._lock:
            interrupted = self._state == "interrupted"
            if not interrupted:
                self.children.add(child)
        if interrupted:
            child.cancel()
        else:
            child.add_done_callback(self.children.discard)

    def interrupt(self) -> None:
        with self._lock:
            if self._state == "running":
                _raise_in(self._thread_id, ActionInterrupted)
            if self._state != "finished":
                self._state = "interrupted"
            children = tuple(self.children)
        for child in children:
            child.cancel()


def current_call() -> SyncCall | None:
    """The sync body running on this thread, if any."""
    return getattr(_local, "call", None)


async def call_in_thread(context: Context, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    """Run ``fn`` on a worker thread; cancelling the await abandons and interrupts it."""
    call = SyncCall(context, fn, args, kwargs)
    future = asyncio.wrap_future(_kernel.part(SyncThreads).submit(call.run))
    try:
        return await future
    except asyncio.CancelledError:
        call.interrupt()
        raise
