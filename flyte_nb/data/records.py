"""What the engine-side listener hands the writer: one typed record per change (see :mod:`.recorder`).

The listener (engine thread) appends these to its run's ``changes`` deque; the run's batch
(writer thread, :mod:`.batch`) drains them. The one exception is the fast path of the usual
action (one argument and an output that are their own snapshots): it never makes a record object.
Its success appends one row of :data:`DONE_WIDTH` plain values to ``RunListener.done`` (see
:data:`DONE_COLUMNS`), read off the action on the engine thread while it is still in that core's
cache: the writer then never touches the action itself (measured: passes over 10,000 actions a
batch, read on the other core, made the writer's columns and timeline cost 2-3x their work).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from ..engine.action import Action, Phase


DONE_COLUMNS = ("spec", "number", "parent", "group", "index", "attempts", "queued_at", "started_at", "ended_at",
                "arg", "output")  # a row of ``RunListener.done``; parent is its number, group its name
DONE_WIDTH = len(DONE_COLUMNS)


class Changed(NamedTuple):
    """``action`` reached ``phase``. ``payload``: running, its pickled inputs (bytes), what the cache
    prepared or a Note; succeeded, its pickled output or a Note; waiting, (since, pool); else None."""

    action: Action
    phase: Phase
    payload: Any


class KeptInputs(NamedTuple):
    """``action`` started with inputs that are their own snapshot, kept by reference for the writer to
    pickle: its only argument (``lone``) or its args tuple."""

    action: Action
    args: Any
    lone: bool


class KeptOutput(NamedTuple):
    """``action`` succeeded with an output that is its own snapshot, kept by reference."""

    action: Action
    value: Any


class Ran(NamedTuple):
    """``action`` ended in ``phase`` (succeeded, or cached: served from the cache) after a call the
    cache prepared: ``inputs`` (a Prepared, a Note or None), ``output`` (pickled bytes, a value file's
    digest, a Note or None). One record for the whole call: a record is an object the writer frees
    late (see :mod:`.snapshot`), and a cached task's call used to make two or three."""

    action: Action
    phase: Phase
    inputs: Any
    output: Any


class RunPhase(NamedTuple):
    """The run itself started (``running``) or ended (``finished``)."""

    phase: str


class CacheEntry(NamedTuple):
    """A cache entry the run computed (from :class:`~.cache.RunCache`), for the ``cache`` table."""

    key: str
    code: str
    task: str
    number: int
    data: bytes
