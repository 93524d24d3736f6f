"""The worker side: what runs on a Dask worker for each attempt (``run_action``).

What the body prints is captured on the worker, streamed back as it is printed (worker events on
a topic of the submitting client) and returned with the result.

**Stopping.** A timeout or an abort cancels the Dask future and interrupts the thread running
the body on its worker (``_stop_keys``: an asynchronous exception, raised at the body's next Python
instruction: a long C call such as one ``time.sleep`` finishes first).
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import ctypes
import inspect
import io
import sys
import threading
from collections.abc import Iterable
from typing import Any

import distributed

from ...data.serialization import loads, ship_error, ship_output
from ...errors import SerializationError, user_traceback

_sink: contextvars.ContextVar[_Sink | None] = contextvars.ContextVar("flyte_nb_dask_sink", default=None)
_functions: collections.OrderedDict[str, Any] = collections.OrderedDict()
_running: dict[str, int] = {}  # dask key → thread running its body
_running_lock = threading.Lock()
_install_lock = threading.Lock()
_local = threading.local()
_MAX_FUNCTIONS = 256


class ActionStopped(BaseException):
    """Raised inside a body whose action was cancelled or timed out (on the worker)."""


class _Sink:
    """What one action prints on a worker: kept for the result, streamed line by line as events."""

    def __init__(self, key: str, topic: str | None) -> None:
        self.key = key
        self.topic = topic
        self.chunks: list[tuple[str, str]] = []
        self.pending: dict[str, list[str]] = {}
        try:
            self.worker = distributed.get_worker()
        except ValueError:
            self.worker = None

    def write(self, stream: str, text: str) -> None:
        pending = self.pending.setdefault(stream, [])
        pending.append(text)
        if "\n" in text or sum(map(len, pending)) > 8192:
            self.flush(stream)

    def flush(self, stream: str) -> None:
        pending = self.pending.get(stream)
        if pending:
            text = "".join(pending)
            pending.clear()
            self.chunks.append((stream, text))
            if self.topic and self.worker is not None:
                try:
                    self.worker.log_event(self.topic, [self.key, len(self.chunks) - 1, stream, text])
                except Exception:  # noqa: BLE001 - still returned with the result
                    pass

    def close(self) -> list[tuple[str, str]]:
        for stream in list(self.pending):
            self.flush(stream)
        return self.chunks


class _Router(io.TextIOBase):
    """``sys.stdout``/``sys.stderr`` of a worker: writes made inside an action go to its sink."""

    def __init__(self, name: str, wrapped: Any) -> None:
        self.name = name
        self.wrapped = wrapped

    def write(self, text: str) -> int:
        sink = _sink.get()
        if sink is None:
            return self.wrapped.write(text) if self.wrapped is not None else len(text)
        if text:
            sink.write(self.name, text)
        return len(text)

    def flush(self) -> None:
        if _sink.get() is None and self.wrapped is not None:
            self.wrapped.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False


def _install() -> None:
    with _install_lock:
        for name in ("stdout", "stderr"):
            if not isinstance(getattr(sys, name), _Router):
                setattr(sys, name, _Router(name, getattr(sys, name)))


def _load_function(key: str, data: bytes) -> Any:
    func = _functions.get(key)
    if func is None:
        func = _functions[key] = loads(data)
        if len(_functions) > _MAX_FUNCTIONS:
            _functions.popitem(last=False)
    return func


def run_action(function_key: str, function: bytes, inputs: bytes, task: str,
               topic: str | None) -> tuple[bool, bytes, str, list[tuple[str, str]], str]:
    """The Dask task of one attempt: ``(ok, result or error bytes, traceback, output chunks, worker)``."""
    _install()
    try:
        worker = distributed.get_worker()
        where, key = worker.address, worker.get_current_task()
    except ValueError:
        where, key = "local", None
    sink = _Sink(str(key), topic)
    token = _sink.set(sink)
    if key is not None:
        with _running_lock:
            _running[key] = threading.get_ident()
    try:
        try:
            func = _load_function(function_key, function)
            args, kwargs = loads(inputs)
        except Exception as error:  # noqa: BLE001 - named, with the worker
            raise SerializationError(f"task `{task}` cannot be loaded on dask worker {where}: "
                                     f"{type(error).__name__}: {error} (install the module it needs on the workers, "
                                     "or define the code in the notebook so it ships by value)") from None
        result = func(*args, **kwargs)
        if inspect.isawaitable(result):
            loop = getattr(_local, "loop", None)
            if loop is None:
                loop = _local.loop = asyncio.new_event_loop()
            result = loop.run_until_complete(result)
        outcome = (True, ship_output(result, task), "")
    except BaseException as error:  # noqa: BLE001 - every failure goes back to the kernel
        outcome = (False, ship_error(error), user_traceback(error))
    finally:
        try:
            with _running_lock:
                _running.pop(key, None)
        except ActionStopped:  # a stop that arrived as the body ended
            pass
        _sink.reset(token)
    return (*outcome, sink.close(), where)


def _stop_keys(keys: Iterable[str]) -> int:
    """On each worker (``client.run``): interrupt the threads running these keys' bodies."""
    stopped = 0
    with _running_lock:
        for key in keys:
            ident = _running.pop(key, None)
            if ident is not None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(ActionStopped))
                stopped += 1
    return stopped
