"""Per-action capture of what task bodies print.

``sys.stdout``/``sys.stderr`` are wrapped once; a write made while an action's body runs (the
``current_action`` context variable, which follows the body into its threads and greenlets) is
kept with that action and announced as an OUTPUT event, so views can show one action's output on
demand. Writes outside actions pass straight through. ``echo`` decides whether captured text is
also written through, prefixed with the action (the default in a terminal; the notebook layer
turns it off because the widget shows it).
"""

from __future__ import annotations

import io
import sys
import threading
from typing import Any, TextIO

from .context import current_action
from .events import EventKind
from .loop import engine

MAX_CHARS = 256 * 1024  # kept per action: the tail, when a body prints more
echo = True


class ActionStream(io.TextIOBase):
    """A text stream that routes writes made inside actions to those actions."""

    def __init__(self, name: str, wrapped: TextIO) -> None:
        self.name = name
        self.wrapped = wrapped
        self._echo_lock = threading.Lock()
        self._last: Any = None  # the action whose text was echoed last
        self._at_line_start = True

    def write(self, text: str) -> int:
        action = current_action.get()
        if action is None:
            return self.wrapped.write(text)
        if text:
            record(action, self.name, text)
        return len(text)

    def _echo(self, action: Any, text: str) -> None:
        """Write ``text`` through, each line prefixed with its run and action."""
        prefix = f"[{action.run.name} {action.name} {action.spec.name}] "
        pieces = []
        with self._echo_lock:
            for line in text.splitlines(keepends=True):
                if self._last is not action and not self._at_line_start:
                    pieces.append("\n")
                    self._at_line_start = True
                if self._at_line_start:
                    pieces.append(prefix)
                pieces.append(line)
                self._at_line_start = line.endswith("\n")
                self._last = action
            self.wrapped.write("".join(pieces))

    def flush(self) -> None:
        self.wrapped.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self.wrapped.isatty()

    def fileno(self) -> int:
        return self.wrapped.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.wrapped, "encoding", "utf-8")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)


def record(action: Any, stream: str, text: str) -> None:
    """Keep ``text`` that ``action``'s body printed (here or in a worker) and announce it."""
    chunks = action.output
    if chunks is None:
        chunks = action.output = []
    chunks.append(text)
    if sum(map(len, chunks)) > MAX_CHARS:
        action.output = ["".join(chunks)[-MAX_CHARS:]]
    loop = engine()
    if loop.on_thread():
        action.run.emit(EventKind.OUTPUT, (stream, text), action)
    else:
        loop.call_soon(action.run.emit, EventKind.OUTPUT, (stream, text), action)
    target = getattr(sys, stream, None)
    if echo and isinstance(target, ActionStream):
        target._echo(action, text)


_lock = threading.Lock()


def install() -> None:
    """Wrap the current ``sys.stdout``/``sys.stderr`` (again, if someone replaced them)."""
    with _lock:
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if stream is not None and not isinstance(stream, ActionStream):
                setattr(sys, name, ActionStream(name, stream))

