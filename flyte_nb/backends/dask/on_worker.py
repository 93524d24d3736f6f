"""The worker side: what runs on a Dask worker for each attempt (``run_action``, on the one runner).

Task calls made inside the attempt travel through the scheduler, never straight to the kernel (a
worker needs no route to it): the runner's ``CallChild`` goes out as a worker event on the
kernel's calls topic, and the kernel answers with ``client.run(deliver, ...)`` on this worker.
A parent that only awaits its children ``secede``s from the worker's thread pool.

What the body prints is captured on the worker, streamed back as it is printed (worker events on
a topic of the submitting client) and returned with the result.

**Stopping.** A timeout or an abort cancels the Dask future and interrupts the thread running
the body on its worker (``_stop_keys``: an asynchronous exception, raised at the body's next Python
instruction: a long C call such as one ``time.sleep`` finishes first).
"""

from __future__ import annotations

import contextvars
import ctypes
import io
import sys
import threading
from collections.abc import Iterable
from typing import Any

import distributed

from ...data.serialization import ship_error
from ...errors import SerializationError
from ...engine.attempt_state import AttemptInfo
from ...worker.protocol import ChildResult, Message, Note, Outcome, Run, decode, encode
from ...worker.runner import Runner

_sink: contextvars.ContextVar[_Sink | None] = contextvars.ContextVar("flyte_nb_dask_sink", default=None)
_running: dict[str, int] = {}  # dask key → thread running its body
_running_lock = threading.Lock()
_install_lock = threading.Lock()
_the_runner: Runner | None = None
_topics: dict[str, str] = {}  # attempt (dask key) → the calls topic of the kernel that submitted it


class ActionStopped(BaseException):
    """Raised inside a body whose action was cancelled or timed out (on the worker)."""


class _Sink:
    """What one action prints on a worker: kept for the result, streamed line by line as events."""

    def __init__(self, key: str, topic: str | None) -> None:
        self.key = key
        self.topic = topic
        self.chunks: list[tuple[str, str]] = []
        self.pending: dict[str, list[str]] = {}
        self.notes: list[Note] = []  # returned with the result too: events may arrive after it
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


def _runner(where: str) -> Runner:
    """This worker process's one runner (the same one as in process pools and containers)."""
    global _the_runner
    with _install_lock:
        if _the_runner is None:
            _the_runner = Runner(_send, f"dask worker {where}")
            _the_runner.on_children = _secede
    return _the_runner


def _send(message: Message) -> None:
    """Worker → kernel through the scheduler: a worker event on the kernel's calls topic."""
    topic = _topics.get(getattr(message, "attempt", ""))
    if isinstance(message, Note):
        sink = _sink.get()
        if sink is not None:
            sink.notes.append(message)
    worker = _worker()
    if topic is not None and worker is not None:
        worker.log_event(topic, [worker.address, encode(message)])


def _secede() -> None:
    """A parent that only awaits its children gives its Dask thread back (they may need it)."""
    try:
        distributed.secede()
    except Exception:  # noqa: BLE001 - not in a Dask task thread
        pass


def _worker() -> Any:
    try:
        return distributed.get_worker()
    except ValueError:
        return None


def deliver(data: bytes) -> None:
    """Kernel → worker through the scheduler (``client.run`` on this worker): a child's result."""
    if _the_runner is not None:
        message = decode(data)
        if isinstance(message, ChildResult):
            _the_runner.resolve(message)


def run_action(function_key: str, function: bytes, inputs: bytes, task: str, topic: str | None,
               context: AttemptInfo | None = None) -> tuple[bool, bytes, str, list[tuple[str, str]], str, list[Note]]:
    """The Dask task of one attempt: ``(ok, result or error bytes, traceback, output chunks, worker, notes)``."""
    _install()
    worker = _worker()
    where, key = (worker.address, worker.get_current_task()) if worker is not None else ("local", None)
    runner = _runner(where)
    sink = _Sink(str(key), topic)
    token = _sink.set(sink)
    attempt = str(key)
    if topic:
        _topics[attempt] = topic + "-calls"
    if key is not None:
        with _running_lock:
            _running[key] = threading.get_ident()
    try:
        try:
            runner.load(function_key, function)
        except Exception as error:  # noqa: BLE001 - named, with the worker
            outcome = Outcome(False, ship_error(SerializationError(
                f"task `{task}` cannot be loaded on dask worker {where}: {type(error).__name__}: {error} (install the "
                "module it needs on the workers, or define the code in the notebook so it ships by value)")))
        else:
            outcome = runner.execute(Run(attempt, function_key, None, inputs, context))
    finally:
        try:
            with _running_lock:
                _running.pop(key, None)
        except ActionStopped:  # a stop that arrived as the body ended
            pass
        _topics.pop(attempt, None)
        _sink.reset(token)
    return outcome.ok, outcome.payload, outcome.traceback, sink.close(), where, sink.notes


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
