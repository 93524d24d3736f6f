"""Per-action capture of what task bodies print.

``sys.stdout``/``sys.stderr`` are wrapped once; a write made while an action's body runs (the
``current_action`` context variable, which follows the body into its threads and greenlets) is
kept with that action and announced as an OUTPUT event, so views can show one action's output on
demand. Writes outside actions pass straight through. ``Kernel.echo`` decides whether captured text is
also written through, prefixed with the action (the default in a terminal; the notebook layer
turns it off because the widget shows it).
"""

from __future__ import annotations

import io
import sys
import threading
from collections import deque
from collections.abc import Iterator
from typing import Any, TextIO

from .context import current_action
from .events import EventKind
from .kernel import kernel
from .loop import engine

MAX_CHARS = 256 * 1024  # kept per action: the tail, when a body prints more
_kernel = kernel()  # its ``echo``: whether captured text is also printed where it was written
BATCH_DELAY = 0.02  # seconds: writes from other threads are announced in batches this far apart


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
        with self._echo_lock:
            if self._last is action and "\n" not in text[:-1]:  # the common case: one piece of one line
                self.wrapped.write(f"[{action.run.name} {action.name} {action.spec.name}] {text}"
                                   if self._at_line_start else text)
                self._at_line_start = text[-1] == "\n"
                return
            prefix = f"[{action.run.name} {action.name} {action.spec.name}] "
            pieces = []
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


class OutputTail:
    """The last ``MAX_CHARS`` characters an action printed, kept in O(1) per write.

    Chunks are kept as written and dropped whole from the front; the first one is cut lazily
    (``skip``), so no write re-measures or re-joins what is already kept.
    """

    __slots__ = ("chunks", "size", "skip")

    def __init__(self) -> None:
        self.chunks: deque[str] = deque()
        self.size = 0  # characters kept, ``skip`` excluded
        self.skip = 0  # characters of ``chunks[0]`` already dropped

    def append(self, text: str) -> None:
        chunks = self.chunks
        chunks.append(text)
        self.size += len(text)
        excess = self.size - MAX_CHARS
        while excess > 0:
            left = len(chunks[0]) - self.skip
            if left > excess:
                self.skip += excess
                self.size -= excess
                return
            chunks.popleft()
            self.skip = 0
            self.size -= left
            excess -= left

    def __iter__(self) -> Iterator[str]:
        chunks = iter(self.chunks)
        first = next(chunks, None)
        if first is not None:
            yield first[self.skip:] if self.skip else first
            yield from chunks

    def __len__(self) -> int:
        return self.size


def record(action: Any, stream: str, text: str) -> None:
    """Keep ``text`` that ``action``'s body printed (here or in a worker) and announce it."""
    tail = action.printed
    if tail is None:
        tail = action.printed = OutputTail()
    tail.append(text)
    loop = engine()
    if loop.on_thread():
        action.run.emit(EventKind.OUTPUT, (stream, text), action)
    else:
        _announce_later(loop, action, stream, text)
    target = getattr(sys, stream, None)
    if _kernel.echo and isinstance(target, ActionStream):
        target._echo(action, text)


_pending: list[tuple[Any, str, str]] = []  # writes made on other threads, to announce on the engine loop
_pending_lock = threading.Lock()


def _announce_later(loop: Any, action: Any, stream: str, text: str) -> None:
    """One wake-up of the engine loop per ``BATCH_DELAY`` of writes, not one per write."""
    with _pending_lock:
        _pending.append((action, stream, text))
        if len(_pending) > 1:
            return  # a flush is already scheduled
    loop.call_soon(loop.loop.call_later, BATCH_DELAY, announce_pending)


def announce_pending() -> None:
    """Announce the writes other threads made so far (engine thread; before an action's end too,
    so that listeners see an action's output before its final phase)."""
    global _pending
    if not _pending:
        return
    with _pending_lock:
        batch, _pending = _pending, []
    for action, stream, text in batch:
        action.run.emit(EventKind.OUTPUT, (stream, text), action)

_lock = threading.Lock()


def install() -> None:
    """Wrap the current ``sys.stdout``/``sys.stderr`` (again, if someone replaced them)."""
    with _lock:
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if stream is not None and not isinstance(stream, ActionStream):
                setattr(sys, name, ActionStream(name, stream))

