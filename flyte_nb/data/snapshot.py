"""Snapshots of an action's inputs and output, as cheap as possible on the engine thread.

A record must show a value as it was when the action started (inputs) or ended (output), even if
the caller mutates it afterwards. Pickling it at once is such a snapshot, but costs the busy
engine thread a microsecond or more per value. A value that can never change (None, bool, int,
float, complex, str, bytes, and tuples of those) is its own snapshot: the engine keeps a
reference (:func:`inputs_snapshot`, :func:`output_snapshot` say :data:`KEEP`) and the writer
thread pickles it later (:class:`Kept`, :func:`pickle_all`) with what the engine would have
used, so the recorded bytes are identical.

What the engine keeps should not be an object the garbage collector tracks (a tuple built for
the purpose): allocated on the engine thread and freed by the writer after a collection has reset
the allocation count, each such object brings the next collection closer, which cost more than
the rest of the listener. So a lone argument is kept without its args tuple.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Iterable, Iterator
from itertools import repeat
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from ..engine.spec import TaskSpec
from .cache import Note, Prepared, RunCache, encode_inputs, task_info
from .pickling import for_store as dumps

if TYPE_CHECKING:
    from ..engine.action import Action

ATOMIC = frozenset({type(None), bool, int, float, complex, str, bytes})
_DEPTH = 8  # nesting of tuples checked before a value is simply pickled at once
_NO_KWARGS: dict[str, Any] = {}  # shared, never mutated: encode_inputs only reads it
_SPEC, _NUMBER = attrgetter("spec"), attrgetter("number")
_pickle = pickle.dumps  # what dumps() tries first
_JOIN_MAX = 1 << 20  # pickles searched for "__main__" in one joined copy up to this many bytes

KEEP: Any = object()  # from inputs_snapshot / output_snapshot: the value is its own snapshot


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


def inputs_snapshot(cache: RunCache | None, action: Action, data: tuple) -> bytes | Prepared | Note | object:
    """A call's inputs as the record keeps them (engine thread): what the cache prepared for a
    cached task, :data:`KEEP` (they are their own snapshot), or their pickle."""
    if cache is not None and cache.prepared:
        prepared = cache.prepared.get(action.number)
        if prepared is not None:
            return prepared
    if keepable_args(*data):
        return KEEP
    try:
        return encode_inputs(action.spec, *data)
    except Exception as error:  # noqa: BLE001 - the record says why
        return Note(f"inputs not recorded: {type(error).__name__}: {error}")


def output_snapshot(cache: RunCache | None, action: Action, result: Any) -> bytes | Note | object:
    """An output as the record keeps it (engine thread): the cache's pickle, :data:`KEEP`, or its pickle."""
    if cache is not None and (cache.prepared or cache.outputs):
        known = cache.release(action.number)[2]
        if known is not None:
            return known
    if type(result) in ATOMIC or keepable(result):
        return KEEP
    try:
        return dumps(result)
    except Exception as error:  # noqa: BLE001
        return Note(f"output not recorded: {type(error).__name__}: {error}")


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


def by_task(actions: list[Action], *columns: list[Any]) -> Iterator[tuple[Any, ...]]:
    """(spec, actions, *columns) for each task among ``actions`` (``columns`` run alongside them)."""
    specs = list(map(_SPEC, actions))
    if specs.count(specs[0]) == len(specs):  # the usual case: all of one map
        yield (specs[0], actions, *columns)
        return
    where: dict[TaskSpec, list[int]] = {}
    for i, spec in enumerate(specs):
        where.setdefault(spec, []).append(i)
    for spec, indexes in where.items():
        yield (spec, [actions[i] for i in indexes], *([column[i] for i in indexes] for column in columns))


def _chunks(kept: dict[Action, Any], every: int, pause: float) -> Iterator[tuple[Any, ...]]:
    """``kept`` as (spec, actions, values) of one task, at most ``every`` values at a time, with a
    pause between chunks: the work comes in C loops that hold the GIL, and the engine needs it."""
    actions = list(kept)
    values = list(kept.values())
    for start in range(0, len(actions), every):
        if start:
            time.sleep(pause)
        yield from by_task(actions[start:start + every], values[start:start + every])


def pickle_all(values: Iterable[Any]) -> list[bytes] | None:
    """What :func:`~.pickling.for_store` gives for each value, in one C loop; None if one of them needs
    ``dumps`` itself (it could not be pickled, or its pickle mentions ``__main__``)."""
    try:
        data = list(map(_pickle, values, repeat(5)))
    except Exception:  # noqa: BLE001 - dumps() knows what to do with it
        return None
    if sum(map(len, data)) > _JOIN_MAX:  # large values: no joined copy
        mentions = any(d.find(b"__main__") != -1 for d in data)
    else:
        mentions = b"".join(data).find(b"__main__") != -1
    return None if mentions else data  # rare (a string that says so): dumps() checks them one by one


class Kept:
    """Values a run's writer has drained but not pickled yet (writer thread only).

    They are pickled in batches, one task at a time: the dicts of inputs by parameter name are
    built and pickled by C loops (``map``), which costs a third of doing it value by value in
    Python; anything unusual goes through :func:`encode_args` / :func:`encode_output`.
    """

    __slots__ = ("arg", "args", "outputs")

    def __init__(self) -> None:
        self.arg: dict[Action, Any] = {}  # the only argument of a call
        self.args: dict[Action, tuple] = {}
        self.outputs: dict[Action, Any] = {}

    def encode(self, inputs: dict[int, bytes], outputs: dict[int, bytes | str], notes: dict[int, str],
               every: int, pause: float) -> None:
        """Pickle them into ``inputs``/``outputs`` (or say why not in ``notes``), pausing every
        ``every`` values so that a busy engine thread gets the GIL back."""
        for spec, actions, values in _chunks(self.arg, every, pause):
            names = task_info(spec).names
            data = None
            if names is not None and len(names) == 1:
                data = pickle_all(map(dict.fromkeys, repeat(names), values))  # {name: value}
            _put(inputs, notes, actions, data or [encode_args(spec, (value,)) for value in values], False)
        self.arg.clear()
        for spec, actions, values in _chunks(self.args, every, pause):
            names = task_info(spec).names
            data = None
            if names is not None and set(map(len, values)) == {len(names)}:
                data = pickle_all(map(dict, map(zip, repeat(names), values)))
            _put(inputs, notes, actions, data or [encode_args(spec, value) for value in values], False)
        self.args.clear()
        for _, actions, values in _chunks(self.outputs, every, pause):
            _put(outputs, notes, actions, pickle_all(values) or [encode_output(value) for value in values], True)
        self.outputs.clear()


def _put(into: dict[int, Any], notes: dict[int, str], actions: list[Action], data: list, final: bool) -> None:
    """Record ``data`` by action number; a Note goes to ``notes`` (an output's note wins over the
    inputs' one, as when both were noted on the engine thread)."""
    numbers = map(_NUMBER, actions)
    if Note not in set(map(type, data)):
        into.update(zip(numbers, data))
        return
    for number, value in zip(numbers, data):
        if type(value) is bytes:
            into[number] = value
        elif final:
            notes[number] = value
        else:
            notes.setdefault(number, value)
