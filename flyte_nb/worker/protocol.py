"""The one message set between the kernel and every worker (process pool, Docker, Dask).

Messages are small typed tuples, pickled with the standard pickler (their payloads — functions,
inputs, outputs, errors — are already cloudpickled bytes). ``VERSION`` is announced in ``Ready``;
the kernel refuses a worker that speaks another one.

Kernel → worker: ``Run`` (one attempt), ``ChildResult`` (a child call's outcome), ``Exit``.
Worker → kernel: ``Ready``, ``Output`` (printed text), ``CallChild`` (a task call made inside the
attempt: the kernel makes it an action), ``CancelChild``, ``Note`` (what the body keeps for its run:
report changes, traced results, checkpoints; see ``engine.attempt_state``), ``Done`` (the
attempt's outcome), and for limits used inside the body (``RateLimiter``, ``Semaphore``: the
kernel's one budget, not the worker's): ``Acquire`` (answered like a call, by ``ChildResult``;
withdrawn by ``CancelChild``), ``Release`` (a semaphore slot) and ``Settle`` (a rate grant's real cost).

Version 3 added ``Acquire``, ``Release`` and ``Settle``; version 4 ``Run.context`` (who the attempt
is: ``flyte.ctx()`` in a worker), ``CallChild.custom`` (the ``custom_context`` in force at the call)
and ``Note``.

``unwrap`` is the one kernel-side (and worker-side, for child results) place where an outcome
becomes a value or a raised error with its remote traceback attached.
"""

from __future__ import annotations

import pickle
from typing import Any, NamedTuple, Union

from ..engine.attempt_state import AttemptInfo
from ..engine.rates import Rate
from ..errors import add_note

VERSION = 4


class Outcome(NamedTuple):
    """What an attempt or a child call produced: cloudpickled value (``ok``) or error, and where."""

    ok: bool
    payload: bytes
    traceback: str = ""
    where: str = ""


class Ready(NamedTuple):
    pid: int
    python: tuple[int, int]
    version: int
    token: str | None = None  # a one-shot container names the attempt it was started for


class Run(NamedTuple):
    attempt: str  # routing id of the attempt, unique among those the worker sees
    key: str  # content digest of the function: workers keep functions by it
    function: bytes | None  # None when the worker already has ``key``
    inputs: bytes  # cloudpickled (args, kwargs)
    context: AttemptInfo | None = None  # who the attempt is, for ctx(), report, trace, checkpoints


class Output(NamedTuple):
    attempt: str | None
    stream: str
    text: str


class CallChild(NamedTuple):
    attempt: str  # the calling attempt: the child's parent action
    call: int  # unique per worker: routes the ChildResult back
    token: str | None  # the kernel's task token, when the task came from the kernel
    task: bytes | None  # the task by value (None when this worker already sent ``token``)
    inputs: bytes
    group: str | None  # the group in force where the call was made
    tags: tuple[str, ...]  # the tags in force where the call was made
    index: int | None = None  # position in a map
    limit: tuple[str, int] | None = None  # a map's (key, concurrency; 0 = none): the kernel holds its group and pool
    total: int | None = None  # a map's number of inputs, when its iterables have a length
    rate: Rate | None = None  # a map's rate: the kernel's pool of the map's group spaces the starts
    custom: tuple[tuple[str, str], ...] = ()  # the custom_context in force where the call was made


class CancelChild(NamedTuple):
    attempt: str
    call: int


class ChildResult(NamedTuple):
    call: int  # a CallChild's or an Acquire's
    outcome: Outcome


class Acquire(NamedTuple):
    """Take ``cost`` units of a limit (a rate limiter or a semaphore) from the kernel's budget."""

    attempt: str
    call: int  # numbered like child calls: the ChildResult comes back to it, CancelChild withdraws it
    limit: bytes  # the limiter or semaphore, cloudpickled by reference (its name, or the kernel's token)
    cost: float = 1


class Release(NamedTuple):
    """Give back the semaphore slot that ``Acquire`` number ``call`` took."""

    attempt: str
    call: int


class Settle(NamedTuple):
    """A rate grant of ``charged`` units really used ``actual``: the kernel refunds or charges the difference."""

    attempt: str
    limit: bytes
    charged: float
    actual: float


class Note(NamedTuple):
    attempt: str
    kind: str  # "report", "trace", "checkpoint": the kernel hands it to that kind's handler
    payload: bytes
    seq: int = 0  # per attempt, from 1: a transport that may reorder (Dask) delivers each once


class Done(NamedTuple):
    attempt: str
    outcome: Outcome


class Exit(NamedTuple):
    pass


Message = Union[Outcome, Ready, Run, Output, CallChild, CancelChild, ChildResult, Note, Done, Exit, Acquire, Release,
                Settle]


def encode(message: Message) -> bytes:
    return pickle.dumps(message, protocol=5)


def decode(data: bytes) -> Message:
    return pickle.loads(data)


def unwrap(outcome: Outcome, where: str = "") -> Any:
    """The value of ``outcome``, or its error raised with the remote traceback as a note."""
    from ..data.pickling import loads

    value = loads(outcome.payload)
    if outcome.ok:
        return value
    if outcome.traceback:
        add_note(value, f"remote traceback ({outcome.where or where}):\n{outcome.traceback.rstrip()}")
    raise value
