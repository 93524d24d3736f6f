"""Snapshots of an action's inputs and output, as cheap as possible on the engine thread.

A record must show a value as it was when the action started (inputs) or ended (output), even if
the caller mutates it afterwards. Pickling it at once is such a snapshot, but costs the busy
engine thread a microsecond or more per value. A value that can never change (None, bool, int,
float, complex, str, bytes, and tuples of those) is its own snapshot: the engine keeps a
reference (:func:`keepable`, :func:`keepable_args`) and the writer thread pickles it later
(:class:`Kept`) with the very functions the engine would have used, so the recorded bytes are
identical.

What the engine keeps should not be an object the garbage collector tracks (a tuple built for
the purpose): allocated on the engine thread and freed by the writer after a collection has reset
the allocation count, each such object brings the next collection closer, which cost more than
the rest of the listener. So a lone argument is kept without its args tuple (:data:`KEPT_ARG`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..engine.spec import TaskSpec
from .cache import Note, dumps, encode_inputs, task_info

if TYPE_CHECKING:
    from ..engine.action import Action

ATOMIC = frozenset({type(None), bool, int, float, complex, str, bytes})
_DEPTH = 8  # nesting of tuples checked before a value is simply pickled at once
_NO_KWARGS: dict[str, Any] = {}  # shared, never mutated: encode_inputs only reads it

# In the recorder's queue, in place of the phase: what the payload is (a value to pickle later)
KEPT_ARG = "running, its only argument kept"
KEPT_ARGS = "running, its args tuple kept"
KEPT_OUTPUT = "succeeded, its output kept"


def keepable(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` can never change: atomic, or a tuple of such values."""
    kind = type(value)
    if kind in ATOMIC:
        return True
    if kind is not tuple or depth >= _DEPTH:
        return False
    for item in value:
        if type(item) not in ATOMIC and not keepable(item, depth + 1):
            return False
    return True


def keepable_args(args: tuple, kwargs: dict) -> bool:
    """Whether a call's inputs can be kept as its positional arguments alone (no keyword arguments)."""
    if kwargs:
        return False
    for value in args:
        if type(value) not in ATOMIC and not keepable(value):
            return False
    return True


def encode_args(spec: TaskSpec, args: tuple) -> bytes | Note:
    """The recorded inputs of a kept call: exactly what :func:`~.cache.encode_inputs` gives."""
    try:
        names = task_info(spec).names
        if names is not None and len(args) == len(names):  # encode_inputs' first case, without its layers
            return dumps({names[0]: args[0]} if len(names) == 1 else dict(zip(names, args)))
        encoded = encode_inputs(spec, args, _NO_KWARGS)
    except Exception as error:  # noqa: BLE001 - as on the engine thread: the record says why
        return Note(f"inputs not recorded: {type(error).__name__}: {error}")
    return encoded if type(encoded) is bytes else encoded.inputs  # a Prepared: the call did not bind


def encode_output(value: Any) -> bytes | Note:
    try:
        return dumps(value)
    except Exception as error:  # noqa: BLE001
        return Note(f"output not recorded: {type(error).__name__}: {error}")


class Kept:
    """Values a run's writer has drained but not pickled yet (writer thread only)."""

    __slots__ = ("arg", "args", "outputs")

    def __init__(self) -> None:
        self.arg: dict[Action, Any] = {}  # the only argument of a call
        self.args: dict[Action, tuple] = {}
        self.outputs: dict[Action, Any] = {}

    def encode(self, inputs: dict[int, bytes], outputs: dict[int, bytes | str], notes: dict[int, str],
               every: int, pause: float) -> None:
        """Pickle them into ``inputs``/``outputs`` (or say why not in ``notes``), pausing every
        ``every`` values so that a busy engine thread gets the GIL back."""
        count = 0
        for kept, one in ((self.arg, True), (self.args, False)):
            for action, args in kept.items():
                count += 1
                if count % every == 0:
                    time.sleep(pause)
                value = encode_args(action.spec, (args,) if one else args)
                if type(value) is bytes:
                    inputs[action.number] = value
                else:
                    notes.setdefault(action.number, value)
            kept.clear()
        for action, result in self.outputs.items():
            count += 1
            if count % every == 0:
                time.sleep(pause)
            value = encode_output(result)
            if type(value) is bytes:
                outputs[action.number] = value
            else:
                notes[action.number] = value
        self.outputs.clear()
