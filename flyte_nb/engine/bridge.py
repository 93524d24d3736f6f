"""Let sync code inside async work wait for async work without blocking the engine loop.

Flyte 2 dies with "Deadlock detected" when an async task makes a sync task call or iterates a
sync ``map``: the call blocks the very loop that must run the child. Here coroutines on the
engine loop are *driven*: each step runs on a greenlet (a "carrier"). When sync code inside a
step must wait (``await_only``), the carrier switches back to the driver, which awaits on the
loop like any coroutine and switches back in with the result. Only that coroutine waits; the loop
never re-enters itself (no nest_asyncio).

A carrier is bound to a coroutine for one step only, unless sync code inside the step is waiting:
a suspended coroutine holds no greenlet (a parked greenlet keeps ~8 KB of C stack). Carriers are
pooled because creating one costs ~8 µs and a switch ~0.2 µs.

A drive stepped from code that already runs on a carrier (an action's body awaited inside a
driven task: ``asyncio.gather`` of task calls) needs no carrier of its own: it steps its
coroutine in place, in its own context, and a sync wait inside suspends the carrier it runs on.
One carrier per task step instead of one per nesting level: two greenlet switches fewer per
child (``benchmarks/bench_core.py`` section 4, "async parent, gather + Semaphore").
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Coroutine, Generator
from typing import Any, TypeVar

from greenlet import getcurrent, greenlet

from ..errors import DeadlockError, TaskExitError

T = TypeVar("T")

_SEND, _THROW = 0, 1
_YIELD, _AWAIT, _DONE, _RAISE = 0, 1, 2, 3


class _Carrier(greenlet):
    """A pooled greenlet that steps one coroutine at a time on behalf of ``drive``.

    ``context`` is that of the innermost drive stepping in place on it (None: its driver's own),
    where a sync wait's coroutine must run.
    """

    context: contextvars.Context | None = None


def _carry(job: tuple[Coroutine[Any, Any, Any], int, Any]) -> None:
    """Body of a carrier: run one step of the coroutine it is handed, report, repeat forever."""
    while True:
        coro, mode, value = job
        try:
            out = coro.send(value) if mode == _SEND else coro.throw(value)
        except StopIteration as stop:
            report: tuple[int, Any] = (_DONE, stop.value)
        except BaseException as error:  # noqa: BLE001 - handed to the awaiting driver
            report = (_RAISE, error)
        else:
            report = (_YIELD, out)
        job = coro = value = out = None  # type: ignore[assignment]
        job = getcurrent().parent.switch(report)


def _step_in_place(carrier: _Carrier, coro: Coroutine[Any, Any, Any], context: contextvars.Context,
                   mode: int, value: Any) -> tuple[int, Any]:
    """One step of ``coro`` on the carrier running the caller, in ``context``; a report as ``_carry``'s."""
    outer, carrier.context = carrier.context, context
    try:
        out = context.run(coro.send, value) if mode == _SEND else context.run(coro.throw, value)
    except StopIteration as stop:
        return _DONE, stop.value
    except BaseException as error:  # noqa: BLE001 - handed to the awaiting driver
        return _RAISE, error
    finally:
        carrier.context = outer
    return _YIELD, out


_pool = threading.local()
_MAX_IDLE = 64


def _idle() -> list[_Carrier]:
    """This thread's idle carriers (greenlets belong to the thread that made them)."""
    idle: list[_Carrier] | None = getattr(_pool, "idle", None)
    if idle is None:
        idle = _pool.idle = []
    return idle


def _spent() -> Generator[Any, Any, Any]:
    """An already-finished step generator, for a drive closed before it started."""
    return
    yield  # makes this a generator


class drive(Coroutine[Any, Any, T]):
    """Run ``coro`` so that sync code inside it may call :func:`await_only`.

    ``context`` is the contextvars context the coroutine runs in (the action's own). A ``drive``
    is itself a coroutine: await it, or hand it to ``asyncio.Task`` directly. With ``contain``
    (the engine loop's tasks) a ``SystemExit`` or ``KeyboardInterrupt`` raised by ``coro`` becomes
    a :class:`~flyte_nb.errors.TaskExitError` of this coroutine: asyncio re-raises those two out of
    the loop itself, which would stop the engine for good. Doing it here rather than in a wrapping
    coroutine saves a frame on every step of every task.
    """

    __slots__ = ("_coro", "_context", "_steps", "_contain")

    def __init__(self, coro: Coroutine[Any, Any, T], context: contextvars.Context, contain: bool = False) -> None:
        self._coro = coro
        self._context = context
        self._steps: Generator[Any, Any, T] | None = None
        self._contain = contain

    def _run(self) -> Generator[Any, Any, T]:
        """One carrier per step, taken from this thread's pool and given back after it (inlined:
        this loop runs for every step of every task on the engine loop)."""
        coro, context = self._coro, self._context
        idle = _idle()
        mode, value = _SEND, None
        while True:
            here = getcurrent()
            if type(here) is _Carrier:  # already on a carrier: step in place (see the module doc)
                kind, payload = _step_in_place(here, coro, context, mode, value)
            else:
                carrier = idle.pop() if idle else _Carrier(_carry)
                if carrier.parent is not here:
                    carrier.parent = here
                carrier.gr_context = context
                kind, payload = carrier.switch((coro, mode, value))
                while kind == _AWAIT:  # sync code in this step waits: the carrier stays bound
                    try:
                        result = yield from drive(payload, carrier.context or context).__await__()
                    except BaseException as error:  # noqa: BLE001 - raised inside the sync caller
                        kind, payload = carrier.throw(error)
                    else:
                        kind, payload = carrier.switch(result)
                carrier.gr_context = None
                if len(idle) < _MAX_IDLE:
                    idle.append(carrier)
            if kind == _YIELD:
                try:
                    value, mode = (yield payload), _SEND
                except BaseException as error:  # noqa: BLE001 - forwarded into the coroutine
                    value, mode = error, _THROW
            elif kind == _DONE:
                return payload
            elif self._contain and isinstance(payload, (SystemExit, KeyboardInterrupt)):
                raise TaskExitError(getattr(coro, "__qualname__", "a coroutine"), payload) from payload
            else:
                raise payload

    def _started(self) -> Generator[Any, Any, T]:
        if self._steps is None:
            self._steps = self._run()
        return self._steps

    def __await__(self) -> Generator[Any, Any, T]:
        return self._started()

    def send(self, value: Any) -> Any:
        return self._started().send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:  # type: ignore[override]
        if self._steps is None:  # cancelled before it ever ran: the inner coroutine never will
            self._coro.close()
            self._steps = _spent()
            error = typ if isinstance(typ, BaseException) else (val if isinstance(val, BaseException) else typ())
            raise error.with_traceback(tb) if tb is not None else error
        return self._steps.throw(typ) if val is None and tb is None else self._steps.throw(typ, val, tb)

    def close(self) -> None:
        if self._steps is None:
            self._coro.close()
            self._steps = _spent()
        else:
            self._steps.close()


def in_driven_code() -> bool:
    """True when the caller runs inside a body driven by :class:`drive`."""
    return isinstance(getcurrent(), _Carrier)


def await_only(coro: Coroutine[Any, Any, T]) -> T:
    """Wait for ``coro`` from sync code running inside a driven body; the loop keeps running."""
    current = getcurrent()
    if not isinstance(current, _Carrier):
        coro.close()
        raise DeadlockError(
            "a blocking flyte_nb call was made on the engine loop outside a task body; "
            "inside plain coroutines use `await task.aio(...)` or `flyte_nb.map.aio(...)` instead"
        )
    return current.parent.switch((_AWAIT, coro))
