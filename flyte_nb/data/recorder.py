"""Recording runs, split by thread: an engine-side listener and a writer-side batch per run.

The engine never calls the store. :func:`attach` gives a run a :class:`RunListener` (this module,
engine thread), a :class:`~.batch.RunBatch` (writer thread) and a :class:`~.cache.RunCache`. The
listener only snapshots what it must (inputs when an action starts, the output when it succeeds:
later mutation by the caller must not change the record) and appends a typed record
(:mod:`.records`) for the writer; it does not ask for ``queued`` events (every action reaches a
later phase, which writes it). A value that cannot change (ints, strings, tuples of them ...) is
its own snapshot: it is kept by reference and the writer pickles it (:mod:`.snapshot`).

The one measured fast path lives behind this boundary: the usual action (one such argument and
output, a map's child: a plain row) makes no record at all. While it runs its argument waits in
``RunListener.started``; its success appends one row of plain columns (number, parent, group,
times, argument, output: :data:`~.records.DONE_COLUMNS`) to the flat ``done`` list, read off the
action here while it is still in this core's cache. The batch only slices those columns into the
commit process's op (:func:`~.rows.succeeded_ops`) and the run's timeline, and never touches the
action: passes over 10,000 actions a batch on the other core cost the writer (hence the engine,
which waits for the GIL) 4.4-5.3 us an action, against 1.9-2.4 us now (``bench_store``). A record
object per event would bring the garbage collector back (allocated here, freed by the writer: see
:mod:`.snapshot`).

The writer thread (:mod:`.writer`) wakes every ``Writer.interval`` seconds, has each batch drain its
listener (an action that started and succeeded between two wake-ups is written once; one still
running is written from ``started``) and commits every run's changes in one transaction with
multi-row INSERTs. A 10,000-action run costs a few commits, not 10,000.

The engine never waits for the disk. ``RUN_FINISHED`` wakes the writer at once, and reads of
history in this kernel (``runs()``, ``get_run()``, ``retry_failed``) and interpreter exit commit
what is pending first, so the kernel always reads its own writes and a normal exit or restart
loses nothing. The price: a kernel killed with SIGKILL within the writer's lag (about
``Writer.interval``, more on a run the writer is still catching up with) may lose the last
changes; the next store open then marks that run ``aborted: kernel exited``. A failing write
never breaks a run: it is logged and retried on the next wake-up; a damaged database stops
recording for this kernel.

Memory stays bounded. While the engine is busy the writer rarely gets the GIL (each of the
loop's zero-timeout polls gives it back and takes it again at once, so CPython never asks it to
switch), and a 100,000-action run would otherwise queue every event until the end. Past
``HIGH_WATER`` queued events the listener waits until the writer has taken the backlog (it
drains again only after committing, so at most two batches are ever held): the engine pauses
only when a run outpaces its writer, for about the writer's Python work (which the run would
have paid later anyway), and at most ``CATCH_UP_WAIT`` seconds per ``HIGH_WATER`` events.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import sqlite3
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

from ..engine.action import Action, Phase
from ..engine.events import Event, EventKind
from ..engine.kernel import kernel
from ..engine.names import unique
from ..engine.run_state import RunState
from ..engine.spec import TaskSpec
from ..errors import StoreError
from . import origin
from .batch import RunBatch
from .cache import Prepared, RunCache, previous_outputs, task_info
from .records import DONE_WIDTH, Changed, KeptInputs, KeptOutput, Ran, RunPhase
from .snapshot import ATOMIC, KEEP, inputs_snapshot, output_snapshot
from .store import Store, get_store, no_space, recording_enabled
from .writer import Writer

log = logging.getLogger("flyte_nb.store")

HIGH_WATER = 8_192  # queued events of one run (~1.5 MB) beyond which the engine waits for the writer
CATCH_UP_WAIT = 5.0  # one wait for the writer; a writer stuck on another process's lock gets one
CATCH_UP_ROUNDS = 12  # a busy one, up to 12 (a minute)
WINDOW = 10_000  # finished actions a recorded run keeps in memory (~3 MB); older ones are read from the store
_QUEUED, _RUNNING, _SUCCEEDED, _CACHED = Phase.QUEUED, Phase.RUNNING, Phase.SUCCEEDED, Phase.CACHED
_WAITING = Phase.WAITING
_kernel = kernel()
_NONE = object()  # not in RunListener.started


class RunListener:
    """One run's engine-side recording: the event listener and what it queued for the writer.

    Only the engine thread calls it (and appends); the writer thread only pops (``RunBatch.drain``).
    """

    phases = tuple(phase for phase in Phase if phase is not Phase.QUEUED)  # see engine.listeners

    def __init__(self, writer: Writer, store: Store, state: RunState) -> None:
        self.writer = writer
        self.store = store
        self.state = state
        self.cache: RunCache | None = None
        self.changes: collections.deque[Any] = collections.deque()  # typed records (.records), in order
        self.started: dict[Action, Any] = {}  # running actions: their lone argument (fast path), or the cache's Prepared
        self.done: list[Any] = []  # the fast path: rows of records.DONE_COLUMNS, flat
        self._lone: dict[TaskSpec, bool] = {}  # whether a task has one parameter (the fast path's plain row)
        self.printed: collections.deque[Action] = collections.deque()  # actions that wrote output
        self.finished = False  # RUN_FINISHED seen
        self.closed = False  # set by the writer: nothing more will be written
        self.drained = threading.Event()  # set by the writer each time it has taken the queues
        self._catch_up_at = HIGH_WATER
        self._done_at = HIGH_WATER * DONE_WIDTH  # len(done) at which the fast path checks the backlog

    def __call__(self, event: Event) -> None:
        """The run's own events (its actions' come through ``on_action``; one built for another
        listener is ignored here)."""
        if event.phase is None and not self.closed:
            try:
                self._run_event(event)
            except Exception:  # noqa: BLE001 - recording must never break a run
                log.warning("flyte_nb: recording an event of run %s failed", self.state.name, exc_info=True)

    def on_action(self, action: Action, phase: Phase, data: Any) -> None:
        """An action reached ``phase`` (see :mod:`..engine.listeners`): snapshot values, queue the change,
        never raise. Called 2-3 times per action."""
        if phase is _QUEUED or self.closed:
            return
        try:
            changes = self.changes
            cache = self.cache
            if phase is _RUNNING:
                if data is not None and not data[1] and len(data[0]) == 1 and type(data[0][0]) in ATOMIC \
                        and (cache is None or not cache.prepared):
                    self.started[action] = data[0][0]  # the fast path, decided inline (inputs_snapshot would KEEP)
                    return
                payload: Any = None if data is None else inputs_snapshot(cache, action, data)
                if payload is KEEP:
                    args = data[0]
                    if len(args) == 1:  # the fast path: recorded once it ends (or by drain meanwhile)
                        self.started[action] = args[0]
                        return
                    changes.append(KeptInputs(action, args, False))
                elif type(payload) is Prepared:  # a cached task's call: recorded with its outcome (one record)
                    self.started[action] = payload
                else:
                    changes.append(Changed(action, phase, payload))
            elif phase is _SUCCEEDED:
                started = self.started.pop(action, _NONE)
                result = data
                if type(result) in ATOMIC and (cache is None or not (cache.prepared or cache.outputs)):
                    payload = KEEP  # what output_snapshot would say, decided inline
                else:
                    payload = output_snapshot(cache, action, result)
                if type(started) is Prepared and payload is not KEEP:
                    changes.append(Ran(action, phase, started, payload))
                elif payload is KEEP and started is not _NONE and type(started) is not Prepared \
                        and self._row(action, started, result):  # the fast path
                    if len(self.done) >= self._done_at:  # its own backlog check: one comparison
                        self._catch_up_if_behind()
                    return
                else:
                    if started is not _NONE:
                        changes.append(_running(action, started))
                    changes.append(KeptOutput(action, result) if payload is KEEP else Changed(action, phase, payload))
            elif phase is _CACHED:
                prepared, hit = self.cache.release(action.number)[:2] if self.cache is not None else (None, None)
                changes.append(Ran(action, phase, prepared, hit))
            elif phase is _WAITING:  # only when a pool makes it wait: why, and since when (the waits table)
                changes.append(Changed(action, phase, (time.time(), action.waiting_for)))
            else:
                if phase >= _SUCCEEDED:
                    if self.cache is not None:
                        self.cache.release(action.number)
                    started = self.started.pop(action, _NONE) if self.started else _NONE
                    if started is not _NONE:
                        changes.append(_running(action, started))
                changes.append(Changed(action, phase, None))
            self._catch_up_if_behind()
        except Exception:  # noqa: BLE001 - recording must never break a run
            log.warning("flyte_nb: recording an event of run %s failed", self.state.name, exc_info=True)

    def _catch_up_if_behind(self) -> None:
        if len(self.changes) + len(self.done) // DONE_WIDTH >= self._catch_up_at:
            self._catch_up()
        self._done_at = (self._catch_up_at - len(self.changes)) * DONE_WIDTH  # the fast path's own check

    def _row(self, action: Action, arg: Any, output: Any) -> bool:
        """Add ``action``'s fast-path row, if it fits a plain row (a map's child, one parameter, one try)."""
        parent, group, index, spec = action.parent, action.group, action.index, action.spec
        if parent is None or group is None or type(index) is not int or action.tags or action.history is not None:
            return False
        lone = self._lone.get(spec)
        if lone is None:
            names = task_info(spec).names
            lone = self._lone[spec] = names is not None and len(names) == 1
        if not lone:
            return False
        self.done.extend((spec, action.number, parent.number, group.name, index, action.attempts, action.queued_at,
                          action.started_at, action.ended_at, arg, output))
        return True

    def push(self, record: Any) -> None:
        """A record from elsewhere on the engine thread (the run cache's entries)."""
        self.changes.append(record)

    @property
    def backlog(self) -> int:
        """Events queued and not drained yet."""
        return len(self.changes) + len(self.done) // DONE_WIDTH

    def _catch_up(self) -> None:
        """Backpressure: let the writer take this backlog before the engine queues more.

        A writer that is busy (a loaded machine, a big batch) is waited for, up to ``CATCH_UP_ROUNDS``
        waits, so memory stays bounded (at 1M actions under load it once reached 461 MB when one wait
        was all it got); one waiting that long for this run's store's lock, held by another process, is
        stuck, and the engine goes on, warned, rather than stall with it.
        """
        self.drained.clear()
        self.writer.wake()
        for _ in range(CATCH_UP_ROUNDS):
            if self.drained.wait(CATCH_UP_WAIT) or not self.writer.running():
                self._catch_up_at = HIGH_WATER
                return
            since, store = self.writer.locked_since, self.writer.locking
            if since is not None and store is self.store and time.monotonic() - since >= CATCH_UP_WAIT:
                break
        # the writer is stuck: do not stall the engine again soon
        behind = self.backlog
        self._catch_up_at = behind + HIGH_WATER
        log.warning("flyte_nb: the run store writer is %d events behind run %s", behind, self.state.name)

    def _run_event(self, event: Event) -> None:
        if event.kind is EventKind.OUTPUT:
            self.printed.append(event.action)
        elif event.kind is EventKind.RUN_STARTED:
            self.changes.append(RunPhase("running"))
        elif event.kind is EventKind.RUN_FINISHED:
            self.changes.append(RunPhase("finished"))
            self.finished = True
            if self.cache is not None:
                self.cache.close()
            _soon(self.writer.wake)


def _running(action: Action, started: Any) -> KeptInputs | Changed:
    """The record of how ``action`` started, from what ``RunListener.started`` kept for it."""
    return Changed(action, _RUNNING, started) if type(started) is Prepared else KeptInputs(action, started, True)


def writer() -> Writer:
    """The kernel's one writer thread (a :class:`.kernel.Kernel` part: closed, so flushed, at exit)."""
    return _kernel.part(Writer)


def _soon(fn: Callable[[], None]) -> None:
    """Call ``fn`` once the engine's current step is over: a run's waiter is woken before the writer
    starts competing with it for the GIL."""
    try:
        asyncio.get_running_loop().call_soon(fn)
    except RuntimeError:  # not on a loop (a listener driven by hand)
        fn()


class _Names:
    """Checks that a run name is free in a store, on one connection kept open for it.

    Reading is all a new run needs on the caller's thread (the row itself is written by the writer
    thread, see :meth:`.batch.RunBatch.claim`), and a kept connection makes each check one indexed SELECT.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._store: Store | None = None
        self._conn: sqlite3.Connection | None = None

    def free(self, store: Store, name: str, taken: Callable[[str], bool]) -> str:
        """``name``, or ``name-2`` … if the store (or ``taken``) already has it.

        A store not created yet holds no names: the writer creates it (tens of milliseconds of
        schema and fsyncs) off the caller's path, and renames the run in the unlikely case that
        another kernel created it with this very name meanwhile.
        """
        if self._store is not store and not store.path.exists():
            return name
        with self._lock:
            if self._store is not store:
                self._close()
                self._conn, self._store = store.connect(), store
            conn, base = self._conn, name
            try:
                name = unique(base, lambda name: bool(conn.execute("SELECT 1 FROM runs WHERE name = ?", (name,)).fetchone())
                              or (name != base and taken(name)))
            except sqlite3.Error as error:
                self._close()
                raise store.error(error) from error
            return name

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = self._store = None


_names = _Names()


def attach(state: RunState, *, read_cache: bool = True, write_cache: bool = True, retry_of: str | None = None,
           taken: Callable[[str], bool] = lambda name: False, on_abort: Callable[[str], None] | None = None) -> str:
    """Record ``state`` in the run store and give it a cache, before it starts; returns its final name.

    ``on_abort(reason)`` is called (on the writer thread) when another process, such as the Jupyter
    server's Runs panel, asks for the run to be aborted (see :meth:`.writer.Writer.abort_requests`).

    With recording off (``FLYTE_NB_STORE=off``) nothing happens. When the store cannot be used the
    run still goes ahead, unrecorded and uncached, with a warning that says why.
    """
    if not recording_enabled():
        return state.name
    store = get_store()
    try:
        state.name = _names.free(store, state.name, taken)
        previous = previous_outputs(store, retry_of) if retry_of else None
    except (StoreError, sqlite3.Error, OSError) as error:
        if retry_of is not None or not no_space(error, store.home):
            warnings.warn(f"{error}\nRun {state.name} goes ahead without being recorded, and without the cache.",
                          RuntimeWarning, stacklevel=3)
            return state.name
        previous = None  # a full disk: the writer records it when space returns, and says so
    listener = RunListener(writer(), store, state)
    batch = RunBatch(listener)
    batch.unclaimed, batch.retry_of, batch.origin = taken, retry_of, origin.current()  # the writer inserts the row
    batch.on_abort = on_abort
    listener.cache = batch.cache = state.cache = RunCache(store, listener.push, read=read_cache, write=write_cache,
                                                          previous=previous)
    state.listeners.append(listener)
    state.window = WINDOW  # finished actions beyond the recent ones leave the kernel: the store has them
    writer().add(batch)
    return state.name


def flush(timeout: float | None = 10.0) -> bool:
    """Commit everything recorded so far in this kernel (history reads call this first)."""
    return writer().flush(timeout)
