"""Errors raised by flyte_nb itself.

User exceptions are never wrapped: a ``ValueError`` raised in a task arrives as a ``ValueError``.
The classes here are for what flyte_nb decides: bad input, timeouts, aborts, deadlocks.
"""

from __future__ import annotations

from types import TracebackType


class FlyteNbError(Exception):
    """Base class of every error that flyte_nb raises on its own account."""


class ConfigurationError(FlyteNbError, ValueError):
    """Bad input to the API; the message says what to change."""


class ActionTimeoutError(FlyteNbError, TimeoutError):
    """An attempt ran longer than its task's timeout and was stopped."""

    def __init__(self, task: str, seconds: float, attempt: int) -> None:
        super().__init__(f"task `{task}` attempt {attempt} exceeded its timeout of {seconds:g}s and was stopped")
        self.task = task
        self.seconds = seconds
        self.attempt = attempt

    def __reduce__(self):  # keep the type when pickled across process boundaries
        return (type(self), (self.task, self.seconds, self.attempt))


class RunAbortedError(FlyteNbError):
    """The run was aborted before it produced outputs."""


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
        if kept:  # an error raised by flyte_nb itself keeps its frames
            current.stack = traceback.StackSummary.from_list(kept)
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


class WorkerDiedError(FlyteNbError):
    """The process running an attempt died (crash, out of memory, killed); retries apply."""
