"""Recording runs: a per-run event listener and one writer thread that commits in batches.

The engine never calls the store. :func:`attach` gives a run a :class:`RunLog` (listener) and a
:class:`~.cache.RunCache`. On the engine thread the listener only snapshots what it must (inputs
when an action starts, the output when it succeeds: later mutation by the caller must not change
the record) and appends to a deque; ``queued`` events are not queued at all (every action reaches
a later phase, which writes it). A value that cannot change (ints, strings, tuples of them ...)
is its own snapshot: it is kept by reference and the writer pickles it (:mod:`.snapshot`). The
usual action, one such argument and output, costs one queued record: while it runs its argument
waits in ``RunLog.started``, and its success queues (action, argument, output) on ``done``.

The writer thread (:mod:`.writer`) wakes every ``Writer.interval`` seconds, coalesces what
arrived (an action that started and succeeded between two wake-ups is written once; one still
running is written from ``started``) and commits every run's changes in one transaction with
multi-row INSERTs (:func:`~.store.insert_many`; rows in :mod:`.rows`). A 10,000-action run costs
a few commits, not 10,000.

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
import functools
import json
import logging
import sqlite3
import sys
import threading
import time
import warnings
from collections.abc import Callable
from itertools import islice, repeat
from typing import Any

from ..engine.action import Action, Phase
from ..engine.events import Event, EventKind
from ..engine.kernel import kernel
from ..engine.names import unique
from ..engine.rates import recorded_limit
from ..engine.run_state import RunState
from ..engine.spec import TaskSpec
from ..errors import StoreError
from . import origin
from .cache import Note, Prepared, RunCache, previous_outputs, task_info
from .occupancy import Occupancy
from .rows import (
    ACTION_WIDTH,
    INSERT_ACTIONS,
    INSERT_PLAIN,
    PLAIN_WIDTH,
    UPSERT_ACTIONS,
    error_fields,
    pending_rows,
    succeeded_rows,
)
from .snapshot import KEEP, KEPT_ARG, KEPT_ARGS, KEPT_OUTPUT, Kept, inputs_snapshot, output_snapshot
from .store import HOST, PID, TOKEN, Store, get_store, insert_many, is_corruption, no_space, recording_enabled
from .writer import Writer

log = logging.getLogger("flyte_nb.store")

YIELD_EVERY = 200  # rows of Python work between pauses that hand the GIL back to a busy engine
YIELD_PAUSE = 0.0001
HIGH_WATER = 8_192  # queued events of one run (~1.5 MB) beyond which the engine waits for the writer
CATCH_UP_WAIT = 5.0  # one wait for the writer; a writer stuck on another process's lock gets one
CATCH_UP_ROUNDS = 12  # a busy one, up to 12 (a minute)
WINDOW = 10_000  # finished actions a recorded run keeps in memory (~3 MB); older ones are read from the store
_QUEUED, _RUNNING, _SUCCEEDED, _CACHED = Phase.QUEUED, Phase.RUNNING, Phase.SUCCEEDED, Phase.CACHED
_WAITING = Phase.WAITING
_kernel = kernel()
_NONE = object()  # not in RunLog.started (never queued either: iter(popleft, _NONE) pops until stopped)


class RunLog:
    """One run's recording: the engine-side listener and the writer-side pending changes."""

    def __init__(self, writer: Writer, store: Store, state: RunState) -> None:
        self.writer = writer
        self.store = store
        self.state = state
        self.run_id = 0  # runs.id, set when the run's row is claimed
        self.unclaimed: Callable[[str], bool] | None = None  # its row is not inserted yet: ``taken`` names for a rename
        self.retry_of: str | None = None
        self.origin: origin.Origin | None = None  # read on the caller's thread (the cell id is per thread)
        self.cache: RunCache | None = None
        self.on_abort: Callable[[str], None] | None = None  # how an abort request from another process lands
        self.abort_seen = False  # an abort request was handed to on_abort (writer thread)
        self.queue: collections.deque[Any] = collections.deque()  # flat: action, phase, payload, action, ...
        self.printed: collections.deque[Action] = collections.deque()  # actions that wrote output (engine thread)
        self.printing: dict[Action, None] = {}  # writer thread: their logs are written until they end
        self.logged: dict[Action, None] = {}  # writer thread: those that ended, whose last logs are in this batch
        self.started: dict[Action, Any] = {}  # running actions whose lone argument is kept (engine thread writes)
        self.done: collections.deque[Any] = collections.deque()  # flat: action, argument, output (they succeeded)
        self.other: collections.deque[tuple] = collections.deque()  # run phase changes and cache entries
        self.finished = False  # RUN_FINISHED seen (engine thread)
        self.closed = False  # nothing more will be written
        # writer thread only: what is drained but not yet committed
        self.pending: dict[Action, Phase] = {}  # the phase each changed action had when drained
        self.kept = Kept()  # values the engine kept by reference, still to pickle
        self.succeeded: list[Any] = []  # drained from ``done``, flat: action, argument, output
        self.succeeded_rows: list[Any] = []  # their rows, built
        self.shown_running: set[Action] = set()  # actions of ``started`` written as running
        self.inputs: dict[int, bytes] = {}
        self.keys: dict[int, str] = {}
        self.outputs: dict[int, bytes | str] = {}  # bytes, or the digest of a value file (a cache hit)
        self.notes: dict[int, str] = {}
        self.cache_rows: list[tuple] = []
        self.waits: list[Any] = []  # flat: action number, since, pool (the waits table)
        self.run_dirty = False
        self.run_phase = "queued"
        self._tasks: dict[TaskSpec, int] = {}  # spec → tasks.id
        self._catch_up_at = 3 * HIGH_WATER  # in queue items: three per event
        self.drained = threading.Event()  # set by the writer each time it has taken the queue
        self.occupancy = Occupancy(state)  # the timeline, kept as the run goes (writer thread)

    # ------------------------------------------------------- engine thread
    def push(self, item: tuple) -> None:
        self.other.append(item)

    def __call__(self, event: Event) -> None:
        """The listener: snapshot values, queue the change, never raise. Called 2-3 times per action.

        The queue is flat (three items per event, added at once by ``extend``; only the engine
        thread calls listeners): a tuple per event would be a tracked object that the writer frees
        late, which makes the garbage collector run more often (see :mod:`.snapshot`).
        """
        phase = event.phase
        if phase is _QUEUED or self.closed:
            return
        try:
            if phase is None:
                self._run_event(event)
                return
            action = event.action
            queue = self.queue
            if phase is _RUNNING:
                data = event.data
                payload: Any = None if data is None else inputs_snapshot(self.cache, action, data)
                if payload is KEEP:
                    args = data[0]
                    if len(args) == 1:  # the common case: queued once it ends (see drain for the meantime)
                        self.started[action] = args[0]
                        return
                    phase, payload = KEPT_ARGS, args
            elif phase is _SUCCEEDED:
                started = self.started.pop(action, _NONE) if self.started else _NONE
                payload = output_snapshot(self.cache, action, event.data)
                if payload is KEEP:
                    if started is not _NONE:
                        self.done.extend((action, started, event.data))
                        if len(self.done) + len(queue) >= self._catch_up_at:
                            self._catch_up()
                        return
                    phase, payload = KEPT_OUTPUT, event.data
                if started is not _NONE:
                    queue.extend((action, KEPT_ARG, started))
            elif phase is _CACHED:
                payload = self.cache.release(action.number)[:2] if self.cache is not None else (None, None)
            elif phase is _WAITING:  # only when a pool makes it wait: why, and since when
                payload = (time.time(), action.waiting_for)
            else:
                payload = None
                if phase >= _SUCCEEDED:
                    if self.cache is not None:
                        self.cache.release(action.number)
                    started = self.started.pop(action, _NONE) if self.started else _NONE
                    if started is not _NONE:
                        queue.extend((action, KEPT_ARG, started))
            queue.extend((action, phase, payload))
            if len(queue) + len(self.done) >= self._catch_up_at:
                self._catch_up()
        except Exception:  # noqa: BLE001 - recording must never break a run
            log.warning("flyte_nb: recording an event of run %s failed", self.state.name, exc_info=True)

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
                self._catch_up_at = 3 * HIGH_WATER
                return
            since, store = self.writer.locked_since, self.writer.locking
            if since is not None and store is self.store and time.monotonic() - since >= CATCH_UP_WAIT:
                break
        # the writer is stuck: do not stall the engine again soon
        behind = len(self.queue) + len(self.done)
        self._catch_up_at = behind + 3 * HIGH_WATER
        log.warning("flyte_nb: the run store writer is %d events behind run %s", behind // 3, self.state.name)

    def _run_event(self, event: Event) -> None:
        if event.kind is EventKind.OUTPUT:
            self.printed.append(event.action)
        elif event.kind is EventKind.RUN_STARTED:
            self.other.append(("r", "running"))
        elif event.kind is EventKind.RUN_FINISHED:
            self.other.append(("r", "finished"))
            self.finished = True
            if self.cache is not None:
                self.cache.close()
            _soon(self.writer.wake)

    # ------------------------------------------------------- writer thread
    def drain(self) -> None:
        """Coalesce what the engine queued since the last batch (and release an engine waiting for it)."""
        queue, pending, inputs, outputs = self.queue, self.pending, self.inputs, self.outputs
        other = self.other
        settled = len(other)  # counted first: a "finished" among these comes after every action event below
        done = len(self.done) // 3 * 3  # then these: the earlier events of their actions are all queued by now
        kept = self.kept
        pop = queue.popleft
        ended: list[Action] = []  # for the timeline: what ended, and what runs, as drained
        running: list[Action] = []
        for _ in range(len(queue) // 3):  # only what is there now; more may arrive meanwhile
            action = pop()
            phase = pop()
            payload = pop()
            if phase is KEPT_ARG:
                pending[action] = _RUNNING
                kept.arg[action] = payload
                running.append(action)
                continue
            if phase is KEPT_ARGS:
                pending[action] = _RUNNING
                kept.args[action] = payload
                running.append(action)
                continue
            if phase is KEPT_OUTPUT:
                pending[action] = _SUCCEEDED
                kept.outputs[action] = payload
                ended.append(action)
                continue
            pending[action] = phase
            if phase >= _SUCCEEDED:
                ended.append(action)
            elif phase is _RUNNING:
                running.append(action)
            if payload is None:
                continue
            number = action.number
            if phase is _WAITING:
                self.waits += (number, *payload)
            elif phase is _RUNNING:
                if type(payload) is bytes:
                    inputs[number] = payload
                else:
                    self._take(number, payload, None)
            elif phase is _SUCCEEDED:
                if type(payload) is bytes:
                    outputs[number] = payload
                else:
                    self.notes[number] = payload
            else:  # cached: the call as prepared by the lookup, and the output it served
                self._take(number, *payload)
        if done:
            items = list(islice(iter(self.done.popleft, _NONE), done))  # popped by a C loop
            finished = items[0::3]
            collections.deque(map(pending.pop, finished, repeat(None)), maxlen=0)  # their earlier phases
            self.succeeded += items
            ended += finished
        running += self._show_running()
        self.occupancy.record(ended, running)
        for _ in range(settled):
            item = other.popleft()
            if item[0] == "c":
                _, key, code, task, number, data = item
                self.cache_rows.append([key, code, task, data, number, time.time()])  # the run id: at build
            else:
                self.run_dirty = True
                self.run_phase = item[1]
        self.drained.set()

    def _show_running(self) -> list[Action]:
        """Running actions of ``started`` not written yet go in this batch, as running; returns them all."""
        running = self.started.copy()  # one C call: the engine thread may change it at any moment
        shown = self.shown_running
        shown.intersection_update(running)
        for action in running.keys() - shown:
            if action.phase is _RUNNING:  # else between two tries: its events tell
                self.pending[action] = _RUNNING
                self.kept.arg[action] = running[action]
                shown.add(action)
        return list(running)

    def _take(self, number: int, prepared: Prepared | Note | None, output: bytes | str | None) -> None:
        if isinstance(prepared, Note):
            self.notes[number] = prepared
        elif prepared is not None:
            self.inputs[number] = prepared.inputs
            if prepared.key is not None:
                self.keys[number] = prepared.key
        if output is not None:
            self.outputs[number] = output

    def claim(self) -> None:
        """Insert the run's row if it is not yet (writer thread, before its first batch is built).

        ``attach`` only checked that the name is free, so that starting a run never waits for a
        write; should another kernel have taken the name in between, the run is renamed here.
        """
        taken = self.unclaimed
        if taken is None:
            return
        state = self.state
        try:
            name, self.run_id = _claim(self.store, state, self.retry_of, taken, self.origin)
        except (StoreError, sqlite3.Error) as error:
            cause = error.__cause__ if isinstance(error, StoreError) else error
            if isinstance(cause, sqlite3.Error) and is_corruption(cause):  # the writer gives up on this store
                warnings.warn(f"{error}\nRun {state.name} goes ahead without being recorded.", RuntimeWarning,
                              stacklevel=2)
            raise
        self.unclaimed = None
        if name != state.name:
            log.warning("flyte_nb: another kernel recorded a run named %s meanwhile; this run is recorded as %s",
                        state.name, name)
            state.name = name

    def build(self, conn: sqlite3.Connection) -> tuple[list, list, list, list, list, tuple | None]:
        """The rows for what is pending: plain and full action rows, attempts, cache entries, logs (all
        flat), and the run's row.

        This is the Python-heavy part, so it runs outside the transaction and pauses every
        ``YIELD_EVERY`` rows: once the writer has the GIL it would otherwise keep it for a whole
        switch interval (5 ms) while a busy engine waits. Background persistence yields to the
        engine; it catches up in the engine's idle moments or after the run. Plain and full
        rows: see :mod:`.rows`.
        """
        self.claim()
        run = self.run_id
        task_id = functools.partial(self._task, conn)
        succeeded_rows(self.succeeded, run, task_id, YIELD_EVERY, YIELD_PAUSE, self.succeeded_rows, self._misfit)
        self.kept.encode(self.inputs, self.outputs, self.notes, YIELD_EVERY, YIELD_PAUSE)
        plain, full, attempts = pending_rows(run, self.pending, self.inputs, self.outputs, self.keys, self.notes,
                                             task_id, self.store, YIELD_EVERY, YIELD_PAUSE)
        pack = self.store.pack
        cache_rows = [v for key, code, name, data, number, at in self.cache_rows
                      for v in (key, code, name, pack(data), run, number, at)]
        plain = self.succeeded_rows + plain
        logs = self._logs(run)
        run_row = self._run_row() if self.run_dirty or plain or full or logs or self.occupancy.dirty else None
        return plain, full, attempts, cache_rows, logs, run_row

    def _logs(self, run: int) -> list[Any]:
        """Rows (flat: run, action, text) for what actions printed; rewritten until each action ends."""
        printed, printing = self.printed, self.printing
        for _ in range(len(printed)):
            printing[printed.popleft()] = None
        rows: list[Any] = []
        for action in list(printing):
            rows += (run, action.number, action.logs)
            if action.phase >= _SUCCEEDED:
                self.logged[action] = None  # forgotten once committed: a failed batch writes them again
        return rows

    def _misfit(self, action: Action, arg: Any, result: Any) -> None:
        """A succeeded record whose row is built the usual way."""
        self.pending[action] = _SUCCEEDED
        self.kept.arg[action] = arg
        self.kept.outputs[action] = result

    def _task(self, conn: sqlite3.Connection, spec: TaskSpec) -> int:
        task = self._tasks.get(spec)
        if task is None:
            task = self._tasks[spec] = self.store.task_id(conn, spec.name, spec.backend, task_info(spec).code)
        return task

    def write(self, conn: sqlite3.Connection, batch: tuple[list, list, list, list, list, tuple | None]) -> None:
        """Write a built batch (inside the writer's transaction: SQLite work only)."""
        plain, full, attempts, cache_rows, logs, run_row = batch
        insert_many(conn, INSERT_PLAIN, PLAIN_WIDTH, plain, UPSERT_ACTIONS)
        insert_many(conn, INSERT_ACTIONS, ACTION_WIDTH, full, UPSERT_ACTIONS)
        if attempts:
            insert_many(conn, "INSERT OR REPLACE INTO attempts", 9, attempts)
        if cache_rows:
            insert_many(conn, "INSERT OR REPLACE INTO cache (key, code, task, output, run, action, created_at)", 7,
                        cache_rows)
        if logs:
            insert_many(conn, "INSERT OR REPLACE INTO logs (run, action, text)", 3, logs)
        if self.waits:
            waits = self.waits
            rows = [v for i in range(0, len(waits), 3) for v in (self.run_id, *waits[i:i + 3])]
            insert_many(conn, "INSERT OR REPLACE INTO waits (run, action, at, pool)", 4, rows)
        if run_row is not None:
            conn.execute(
                "UPDATE runs SET phase = ?, started_at = ?, ended_at = ?, updated_at = ?, abort_reason = ?, actions = ?, "
                "counts = ?, error_type = ?, error_message = ?, error_traceback = ?, error_blob = ?, groups = ?, "
                "pools = ?, group_counts = ?, timeline = ? WHERE id = ?", run_row)

    def _run_row(self) -> tuple:
        state = self.state
        finished = self.run_phase == "finished"
        phase = state.phase if finished else self.run_phase
        counts = {str(p): n for p, n in zip(Phase, list(state.counts)) if n}
        error = error_fields(state.error, self.store) if finished else (None,) * 4
        every = list(state.groups.values())
        groups = {g.name: [g.total, g.pool.capacity if g.pool is not None else None,
                           g.parent.number if g.parent is not None else None] for g in every}
        group_counts = {g.name: {str(p): n for p, n in zip(Phase, list(g.counts)) if n} for g in every}
        pools = {p.name: recorded_limit(p) for p in list(state.pools.values())}
        if finished:
            self.occupancy.sweep()  # the run has ended: everything is final
        return (phase, state.started_at, state.ended_at if finished else None, time.time(),
                state.abort_reason if phase == "aborted" else None, state.action_count, json.dumps(counts), *error,
                json.dumps(groups), json.dumps(pools), json.dumps(group_counts), self.occupancy.to_json(), self.run_id)

    def committed(self) -> None:
        if self.cache_rows and self.cache is not None:
            self.cache.index.written(row[0] for row in self.cache_rows)
        for action in self.logged:
            self.printing.pop(action, None)
        self.logged.clear()
        self.succeeded_rows.clear()
        self.pending.clear()
        self.inputs.clear()
        self.keys.clear()
        self.outputs.clear()
        self.notes.clear()
        self.cache_rows.clear()
        self.waits.clear()
        self.run_dirty = False
        if self.finished and not self.queue and not self.other and not self.done:
            self.closed = True


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


def _version() -> str | None:
    return getattr(sys.modules.get("flyte_nb"), "__version__", None)


def _claim(store: Store, state: RunState, retry_of: str | None, taken: Callable[[str], bool],
           where: origin.Origin | None = None) -> tuple[str, int]:
    """Insert the run's row, renaming it (``name-2`` …) if the store already holds that name; (name, id)."""
    base = state.name
    with store.writing() as conn:
        name = unique(base, lambda name: bool(conn.execute("SELECT 1 FROM runs WHERE name = ?", (name,)).fetchone())
                      or (name != base and taken(name)))
        row_id = conn.execute(
            "INSERT INTO runs (name, driver, phase, created_at, updated_at, retry_of, pid, host, process, version, "
            "notebook, kernel, cell) VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (name, state.driver.name, state.created_at, time.time(), retry_of, PID, HOST, TOKEN, _version(),
             *(where or origin.current()))).lastrowid
    return name, row_id


class _Names:
    """Checks that a run name is free in a store, on one connection kept open for it.

    Reading is all a new run needs on the caller's thread (the row itself is written by the writer
    thread, see :meth:`RunLog.claim`), and a kept connection makes each check one indexed SELECT.
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
    run_log = RunLog(writer(), store, state)
    run_log.unclaimed, run_log.retry_of, run_log.origin = taken, retry_of, origin.current()  # the writer inserts the row
    run_log.on_abort = on_abort
    run_log.cache = state.cache = RunCache(store, run_log.push, read=read_cache, write=write_cache, previous=previous)
    state.listeners.append(run_log)
    state.window = WINDOW  # finished actions beyond the recent ones leave the kernel: the store has them
    writer().add(run_log)
    return state.name


def flush(timeout: float | None = 10.0) -> bool:
    """Commit everything recorded so far in this kernel (history reads call this first)."""
    return writer().flush(timeout)
