"""Errors raised by flyte_nb itself.

User exceptions are never wrapped: a ``ValueError`` raised in a task arrives as a ``ValueError``.
The classes here are for what flyte_nb decides: bad input, timeouts, aborts, deadlocks.
"""

from __future__ import annotations


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
