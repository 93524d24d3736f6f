"""Errors raised by flyte_nb, the Flyte SDK's error classes, and the mapping between them.

A failed task keeps its type *and* matches Flyte's: a child's ``ValueError`` is caught by
``except ValueError`` and by ``except flyte.errors.RuntimeUserError as e`` (``e.code ==
"ValueError"``), because :func:`flyte_error` re-raises it as an instance of a subclass of both
(the way Ray's ``RayTaskError(T)`` does). flyte_nb's own failures sit in the SDK's tree too: a
timeout is a ``TaskTimeoutError``, an abort an ``ActionAbortedError``, a dead worker a
``RuntimeSystemError``, an out-of-memory kill an ``OOMError``.
"""

from __future__ import annotations

from types import MemberDescriptorType, TracebackType
from typing import Any

from .runtime_errors import *  # noqa: F403 - flyte.errors.X for every SDK error class
from .runtime_errors import (
    ActionAbortedError,
    BaseRuntimeError,
    DeadlineExceededError,
    MaxQueuedTimeExceededError,
    MaxRuntimeExceededError,
    NonRecoverableError,
    OOMError,
    RuntimeSystemError,
    RuntimeUserError,
)


class FlyteNbError(Exception):
    """Base class of every error that flyte_nb raises on its own account."""


class ConfigurationError(FlyteNbError, ValueError):
    """Bad input to the API; the message says what to change."""


class ActionTimeoutError(FlyteNbError, TimeoutError, MaxRuntimeExceededError):
    """An attempt ran longer than its task's timeout and was stopped (Flyte: ``MaxRuntimeExceededError``)."""

    def __init__(self, task: str, seconds: float, attempt: int) -> None:
        message = f"task `{task}` attempt {attempt} exceeded its timeout of {seconds:g}s and was stopped"
        # not through the timeout classes' __init__: ActionDeadlineError mixes in a sibling of theirs
        RuntimeUserError.__init__(self, "MaxRuntimeExceededError", message)
        self.task = task
        self.seconds = seconds
        self.attempt = attempt

    __reduce__ = BaseRuntimeError.__reduce__  # not OSError's, which would call __init__ with the message


class ActionDeadlineError(ActionTimeoutError, DeadlineExceededError):
    """The action ran past its ``Timeout(deadline=...)``, counting every attempt; no retry follows."""

    def __init__(self, task: str, seconds: float, attempt: int) -> None:
        ActionTimeoutError.__init__(self, task, seconds, attempt)
        self.args = (f"task `{task}` passed its deadline of {seconds:g}s (attempt {attempt}) and was stopped",)
        self.code = "DeadlineExceededError"


class ActionQueuedTimeoutError(ActionTimeoutError, MaxQueuedTimeExceededError):
    """An attempt waited for its slots longer than ``Timeout(max_queued_time=...)``; it never started.

    It held nothing while it waited (all or nothing), so failing it releases nothing; retries
    apply, each attempt with its own bound, as in Flyte.
    """

    def __init__(self, task: str, seconds: float, attempt: int) -> None:
        ActionTimeoutError.__init__(self, task, seconds, attempt)
        self.args = (f"task `{task}` attempt {attempt} waited for its slots longer than its max_queued_time of "
                     f"{seconds:g}s and did not start",)
        self.code = "MaxQueuedTimeExceededError"


class RunAbortedError(FlyteNbError, ActionAbortedError):
    """The run was aborted before it produced outputs (Flyte: ``ActionAbortedError``)."""


class TaskExitError(FlyteNbError):
    """A task raised ``SystemExit`` or ``KeyboardInterrupt`` (``sys.exit()``, an argparse error).

    Those would stop the engine itself, so they fail the action that raised them instead (no
    retries: the code asked to stop). ``original`` (also ``__cause__``) is what was raised.
    """

    def __init__(self, task: str, original: BaseException) -> None:
        hint = " (sys.exit() or an argparse error?)" if isinstance(original, SystemExit) else ""
        super().__init__(f"task `{task}` raised {original!r}{hint}; it fails this action, not the kernel: "
                         "return a value or raise an Exception instead")
        self.task = task
        self.original = original
        self.__cause__ = original

    def __reduce__(self):  # keep the type when pickled across process boundaries
        return (type(self), (self.task, self.original))


class DeadlockError(FlyteNbError, RuntimeError):
    """A blocking call was made where blocking would freeze the engine loop."""


def add_note(error: BaseException, note: str) -> None:
    """``BaseException.add_note`` that also works on Python 3.10."""
    if hasattr(error, "add_note"):
        error.add_note(note)
    else:  # pragma: no cover - Python 3.10
        notes = getattr(error, "__notes__", None)
        if notes is None:
            notes = []
            try:
                error.__notes__ = notes  # type: ignore[attr-defined]
            except Exception:
                return
        notes.append(note)


def _hidden() -> tuple[str, ...]:
    """Folders whose frames are plumbing, not the user's code: flyte_nb, asyncio, concurrent.futures."""
    import asyncio
    import concurrent.futures
    import os

    return tuple(os.path.dirname(path) + os.sep for path in (__file__, asyncio.__file__, concurrent.futures.__file__))


def without_engine_frames(tb: TracebackType | None) -> TracebackType | None:
    """``tb`` without flyte_nb's, asyncio's and concurrent.futures' frames; the user's frames stay.

    An error that flyte_nb raised itself (a timeout, say) has only such frames and keeps them all.
    """
    hidden = _hidden()
    kept = []
    current = tb
    while current is not None:
        if not current.tb_frame.f_code.co_filename.startswith(hidden):
            kept.append(current)
        current = current.tb_next
    if not kept:
        return tb
    trimmed = None
    for frame in reversed(kept):
        trimmed = TracebackType(trimmed, frame.tb_frame, frame.tb_lasti, frame.tb_lineno)
    return trimmed


def user_traceback(error: BaseException) -> str:
    """The traceback text of ``error`` (and its causes) without plumbing frames.

    What a user wants to see is where *their* task failed, not how the engine carried the error.
    """
    import traceback

    hidden = _hidden()
    summary = traceback.TracebackException.from_exception(error)
    seen: set[int] = set()
    pending = [summary]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        kept = [frame for frame in current.stack if not frame.filename.startswith(hidden)]
        frames = kept or list(current.stack)  # an error raised by flyte_nb itself keeps its frames
        # Frames without column positions: traceback then draws no ^^^ carets and never calls
        # ast.parse, which CPython < 3.11.8 corrupts when two threads parse at once (cpython#106905);
        # this runs on engine and reader threads while the user's cell may be parsing.
        current.stack = traceback.StackSummary.from_list(
            [(frame.filename, frame.lineno, frame.name, frame.line) for frame in frames]
        )
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return "".join(summary.format())


class StoreError(FlyteNbError):
    """The run store cannot be used as it is (corrupt, foreign, or written by a newer flyte_nb).

    flyte_nb never repairs, migrates down or overwrites such a file: the message says where it is
    and what to do.
    """


class RunNotFoundError(FlyteNbError, KeyError):
    """No run of that name in the run store."""

    def __str__(self) -> str:  # KeyError would show the message in quotes
        return str(self.args[0]) if self.args else ""


class RecordedError(FlyteNbError):
    """An error read back from the run store whose original type could not be restored.

    ``type_name`` is the original type (``module.Qualname``), ``traceback_text`` its recorded traceback.
    """

    def __init__(self, type_name: str, message: str, traceback_text: str | None = None) -> None:
        super().__init__(f"{type_name.removeprefix('builtins.')}: {message}")
        self.type_name = type_name
        self.message = message
        self.traceback_text = traceback_text

    def __reduce__(self):
        return (type(self), (self.type_name, self.message, self.traceback_text))


class SerializationError(FlyteNbError, TypeError):
    """A task, its inputs or its output could not be shipped to or from where it runs."""


class WorkerDiedError(FlyteNbError, RuntimeSystemError):
    """The process running an attempt died (crash, killed); retries apply (Flyte: ``RuntimeSystemError``)."""

    def __init__(self, message: str, worker: str | None = None) -> None:
        RuntimeSystemError.__init__(self, "WorkerDiedError", message, worker)


class OutOfMemoryError(WorkerDiedError, OOMError):
    """The process or container running an attempt was killed for using too much memory (Flyte: ``OOMError``)."""

    kind = "user"

    def __init__(self, message: str, worker: str | None = None) -> None:
        BaseRuntimeError.__init__(self, "OOMError", "user", message, worker)


# ------------------------------------------------------------------ mapping
_DUALS: dict[type, type] = {}
_MAX_DUALS = 1024


def flyte_error(error: BaseException) -> BaseException:
    """``error`` as the engine raises it to callers: its own type and a ``RuntimeUserError``.

    Errors already in the SDK's tree (timeouts, aborts, dead workers, ``NonRecoverableError``…) and
    ``BaseException``s that are not ``Exception``s come back unchanged; so does an error whose class
    cannot be subclassed. Otherwise the result is a copy whose class derives from both (cached per
    class) with the same args, attributes, notes, cause and traceback; ``code`` is the class name.
    """
    if not isinstance(error, Exception) or isinstance(error, BaseRuntimeError):
        return error
    dual = _dual(type(error))
    if dual is None:
        return error
    mapped = _instance(dual, error.args)
    mapped.__dict__.update(getattr(error, "__dict__", {}))
    for klass in type(error).__mro__:  # __slots__ and C fields (OSError.filename, StopIteration.value…)
        for name, attribute in vars(klass).items():
            if not isinstance(attribute, MemberDescriptorType):
                continue
            try:
                value = getattr(error, name)
                if value is not None or klass.__module__ != "builtins":  # a C field left unset stays unset
                    setattr(mapped, name, value)
            except (AttributeError, TypeError):
                pass
    if isinstance(error, RecordedError):  # stands for an error that could not be shipped: its type is the code
        mapped.code = error.type_name.rpartition(".")[2]
    mapped.__cause__ = error.__cause__
    mapped.__context__ = error.__context__
    return mapped.with_traceback(error.__traceback__)


def retryable(error: BaseException) -> bool:
    """Whether a failed attempt may be retried: an ``Exception`` but not ``NonRecoverableError`` or a passed deadline."""
    return isinstance(error, Exception) and not isinstance(error, (NonRecoverableError, DeadlineExceededError))


def _dual(kind: type) -> type | None:
    """The subclass of ``kind`` and ``RuntimeUserError``; it looks like ``kind`` in reprs and tracebacks."""
    dual = _DUALS.get(kind)
    if dual is None:
        namespace = {"__module__": kind.__module__, "__qualname__": kind.__qualname__, "__doc__": kind.__doc__,
                     "__init__": kind.__init__, "__reduce__": _reduce_dual, "code": kind.__name__,
                     "_flyte_nb_original": kind}
        try:
            dual = type(kind)(kind.__name__, (kind, RuntimeUserError), namespace)
        except Exception:  # noqa: BLE001 - a final class, a metaclass or __init_subclass__ that refuses
            return None
        if len(_DUALS) >= _MAX_DUALS:
            _DUALS.pop(next(iter(_DUALS)))
        _DUALS[kind] = dual
    return dual


def _instance(dual: type, args: tuple) -> Any:
    try:
        mapped = dual.__new__(dual, *args)
    except Exception:  # noqa: BLE001 - a __new__ with a signature of its own
        mapped = BaseException.__new__(dual)
    mapped.args = args
    return mapped


def _reduce_dual(error: BaseException) -> tuple[Any, ...]:
    """Pickled as (original class, args, attributes): the dual class is made again where it is loaded."""
    return (_restore_dual, (type(error)._flyte_nb_original, error.args, dict(error.__dict__)))


def _restore_dual(kind: type, args: tuple, state: dict[str, Any]) -> BaseException:
    dual = _dual(kind)
    if dual is None:
        error = _instance(kind, args)
    else:
        error = _instance(dual, args)
    error.__dict__.update(state)
    return error
