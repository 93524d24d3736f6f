"""A run's writer-side recording: what its listener queued, coalesced into rows (writer thread only).

Each cycle the :class:`~.writer.Writer` has every :class:`RunBatch` ``drain`` its run's
:class:`~.recorder.RunListener` (an action that started and succeeded since the last cycle is
written once, in its last phase), ``build`` the ops that write them outside any transaction (the
Python-heavy part, paced so that a busy engine keeps the GIL), which the writer commits
(:mod:`.committer`), and forget them once ``committed``. A failed batch keeps what it drained:
the next cycle writes it.
"""

from __future__ import annotations

import functools
import json
import logging
import sqlite3
import sys
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..engine.action import Action, Phase
from ..engine.names import unique
from ..engine.rates import recorded_limit
from ..engine.run_state import RunState
from ..engine.spec import TaskSpec
from ..errors import StoreError
from . import origin
from .cache import Note, Prepared, RunCache, task_info
from .committer import Op
from .occupancy import Occupancy
from .records import DONE_WIDTH, CacheEntry, Changed, KeptInputs, KeptOutput, Ran, RunPhase
from .rows import (
    ACTION_WIDTH,
    INSERT_ACTIONS,
    INSERT_PLAIN,
    PLAIN_WIDTH,
    UPSERT_ACTIONS,
    error_fields,
    pending_rows,
    succeeded_ops,
)
from .snapshot import Kept
from .store import HOST, PID, TOKEN, Store, is_corruption

if TYPE_CHECKING:
    from .recorder import RunListener

log = logging.getLogger("flyte_nb.store")

YIELD_EVERY = 200  # rows of Python work between pauses that hand the GIL back to a busy engine
YIELD_PAUSE = 0.0001
_RUNNING, _SUCCEEDED, _WAITING = Phase.RUNNING, Phase.SUCCEEDED, Phase.WAITING
UPDATE_RUN = ("UPDATE runs SET phase = ?, started_at = ?, ended_at = ?, updated_at = ?, abort_reason = ?, actions = ?, "
              "counts = ?, error_type = ?, error_message = ?, error_traceback = ?, error_blob = ?, groups = ?, "
              "pools = ?, group_counts = ?, timeline = ? WHERE id = ?")


class RunBatch:
    """One run's changes between its listener and the store (writer thread only)."""

    def __init__(self, listener: RunListener) -> None:
        self.listener = listener
        self.store: Store = listener.store
        self.state: RunState = listener.state
        self.run_id = 0  # runs.id, set when the run's row is claimed
        self.unclaimed: Callable[[str], bool] | None = None  # its row is not inserted yet: ``taken`` names for a rename
        self.retry_of: str | None = None
        self.origin: origin.Origin | None = None  # read on the caller's thread (the cell id is per thread)
        self.cache: RunCache | None = None
        self.on_abort: Callable[[str], None] | None = None  # how an abort request from another process lands
        self.abort_seen = False  # an abort request was handed to on_abort
        # drained but not yet committed
        self.pending: dict[Action, Phase] = {}  # the phase each changed action had when drained
        self.kept = Kept()  # values the engine kept by reference, still to pickle
        self.succeeded: list[Any] = []  # the listener's fast path, drained: rows of records.DONE_COLUMNS, flat
        self.succeeded_ops: list[Op] = []  # their rows, as columns for the committer
        self.wrote = False  # the last batch built had something to write
        self.commits = 0  # transactions that carried this run's records
        self.shown_running: set[Action] = set()  # actions of ``started`` written as running
        self.inputs: dict[int, bytes] = {}
        self.keys: dict[int, str] = {}
        self.outputs: dict[int, bytes | str] = {}  # bytes, or the digest of a value file (a cache hit)
        self.notes: dict[int, str] = {}
        self.cache_rows: list[list] = []
        self.waits: list[Any] = []  # flat: action number, since, pool (the waits table)
        self.printing: dict[Action, None] = {}  # actions whose logs are written until they end
        self.logged: dict[Action, None] = {}  # those that ended, whose last logs are in this batch
        self.run_dirty = False
        self.run_phase = "queued"
        self._tasks: dict[TaskSpec, int] = {}  # spec → tasks.id
        self.occupancy = Occupancy(self.state)  # the timeline, kept as the run goes

    @property
    def finished(self) -> bool:
        return self.listener.finished

    @property
    def closed(self) -> bool:
        return self.listener.closed

    @closed.setter
    def closed(self, value: bool) -> None:
        self.listener.closed = value

    # -------------------------------------------------------------- drain
    def drain(self) -> None:
        """Coalesce what the listener queued since the last batch (and release an engine waiting for it)."""
        listener = self.listener
        changes, fast = listener.changes, listener.done
        # only what is there now (more may arrive meanwhile), fast-path rows counted first: the
        # earlier changes of each are queued by then
        done = len(fast) // DONE_WIDTH * DONE_WIDTH
        count = len(changes)
        over = False
        pending, kept = self.pending, self.kept
        ended: list[Action] = []  # for the timeline: what ended, and what runs, as drained
        running: list[Action] = []
        pop = changes.popleft
        for _ in range(count):
            record = pop()
            kind = type(record)
            if kind is Changed:
                action, phase, payload = record
                pending[action] = phase
                if phase >= _SUCCEEDED:
                    ended.append(action)
                elif phase is _RUNNING:
                    running.append(action)
                if payload is not None:
                    self._payload(action.number, phase, payload)
            elif kind is KeptInputs:
                action = record.action
                pending[action] = _RUNNING
                (kept.arg if record.lone else kept.args)[action] = record.args
                running.append(action)
            elif kind is Ran:
                action, phase, prepared, output = record
                pending[action] = phase
                ended.append(action)
                self._take(action.number, prepared, output)
            elif kind is KeptOutput:
                action = record.action
                pending[action] = _SUCCEEDED
                kept.outputs[action] = record.value
                ended.append(action)
            elif kind is CacheEntry:
                self.cache_rows.append([record.key, record.code, record.task, record.data, record.number, time.time()])
            elif kind is RunPhase:
                self.run_dirty = True
                self.run_phase = record.phase
                over = record.phase == "finished"
        if over:  # the run's last record: every fast-path row came before it
            done = len(fast) // DONE_WIDTH * DONE_WIDTH
        items = fast[:done]  # two C calls: the engine only ever appends
        del fast[:done]
        if items and pending:  # written from the fast path: any earlier phase is superseded
            numbers = set(items[1::DONE_WIDTH])
            for action in [action for action in pending if action.number in numbers]:
                del pending[action]
        self.succeeded += items
        running += self._show_running()
        self.occupancy.record(ended, running, items)
        listener.drained.set()

    def _payload(self, number: int, phase: Phase, payload: Any) -> None:
        if phase is _WAITING:
            self.waits += (number, *payload)
        elif phase is _RUNNING:
            if type(payload) is bytes:
                self.inputs[number] = payload
            else:
                self._take(number, payload, None)
        elif type(payload) is bytes:  # succeeded
            self.outputs[number] = payload
        else:
            self.notes[number] = payload

    def _show_running(self) -> list[Action]:
        """Running actions of the listener's ``started`` not written yet go in this batch, as running;
        returns them all."""
        running = self.listener.started.copy()  # one C call: the engine thread may change it at any moment
        shown = self.shown_running
        shown.intersection_update(running)
        for action in running.keys() - shown:
            if action.phase is _RUNNING:  # else between two tries: its events tell
                self.pending[action] = _RUNNING
                started = running[action]
                if type(started) is Prepared:
                    self._take(action.number, started, None)
                else:
                    self.kept.arg[action] = started
                shown.add(action)
        return list(running)

    def _take(self, number: int, prepared: Prepared | Note | None, output: bytes | str | Note | None) -> None:
        """A call as the cache prepared it, and the output it gave or was served (bytes or a value file's digest)."""
        if isinstance(prepared, Note):
            self.notes[number] = prepared
        elif prepared is not None:
            self.inputs[number] = prepared.inputs
            if prepared.key is not None:
                self.keys[number] = prepared.key
        if type(output) is Note:
            self.notes[number] = output
        elif output is not None:
            self.outputs[number] = output

    # -------------------------------------------------------------- rows
    def claim(self) -> None:
        """Insert the run's row if it is not yet (before its first batch is built).

        ``attach`` only checked that the name is free, so that starting a run never waits for a
        write; should another kernel have taken the name in between, the run is renamed here.
        """
        taken = self.unclaimed
        if taken is None:
            return
        state = self.state
        try:
            name, self.run_id = insert_run(self.store, state, self.retry_of, taken, self.origin)
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

    def build(self, conn: sqlite3.Connection) -> list[Op]:
        """The ops (:mod:`.committer`) that write what is pending: action rows, attempts, cache
        entries, logs, waits and the run's row.

        This is the Python-heavy part, so it runs outside the transaction and pauses every
        ``YIELD_EVERY`` rows: once the writer has the GIL it would otherwise keep it for a whole
        switch interval (5 ms) while a busy engine waits. Plain and full rows: see :mod:`.rows`.
        """
        self.claim()
        run = self.run_id
        task_id = functools.partial(self._task, conn)
        succeeded_ops(self.succeeded, run, task_id, self.succeeded_ops)
        self.kept.encode(self.inputs, self.outputs, self.notes, YIELD_EVERY, YIELD_PAUSE)
        plain, full, attempts = pending_rows(run, self.pending, self.inputs, self.outputs, self.keys, self.notes,
                                             task_id, self.store, YIELD_EVERY, YIELD_PAUSE)
        pack = self.store.pack
        ops: list[Op] = list(self.succeeded_ops)
        rows = (
            (INSERT_PLAIN, PLAIN_WIDTH, plain, UPSERT_ACTIONS),
            (INSERT_ACTIONS, ACTION_WIDTH, full, UPSERT_ACTIONS),
            ("INSERT OR REPLACE INTO attempts", 9, attempts, ""),
            ("INSERT OR REPLACE INTO cache (key, code, task, output, run, action, created_at)", 7,
             [v for key, code, name, data, number, at in self.cache_rows for v in (key, code, name, pack(data), run,
                                                                                   number, at)], ""),
            ("INSERT OR REPLACE INTO logs (run, action, text)", 3, self._logs(run), ""),
            ("INSERT OR REPLACE INTO waits (run, action, at, pool)", 4,
             [v for i in range(0, len(self.waits), 3) for v in (run, *self.waits[i:i + 3])], ""),
        )
        ops += [("rows", head, width, values, tail) for head, width, values, tail in rows if values]
        if ops or self.run_dirty or self.occupancy.dirty:
            ops.append(("sql", UPDATE_RUN, self._run_row()))
        self.wrote = bool(ops)
        return ops

    def _logs(self, run: int) -> list[Any]:
        """Rows (flat: run, action, text) for what actions printed; rewritten until each action ends."""
        printed, printing = self.listener.printed, self.printing
        for _ in range(len(printed)):
            printing[printed.popleft()] = None
        rows: list[Any] = []
        for action in list(printing):
            rows += (run, action.number, action.logs)
            if action.phase >= _SUCCEEDED:
                self.logged[action] = None  # forgotten once committed: a failed batch writes them again
        return rows

    def _task(self, conn: sqlite3.Connection, spec: TaskSpec) -> int:
        task = self._tasks.get(spec)
        if task is None:
            task = self._tasks[spec] = self.store.task_id(conn, spec.name, spec.backend, task_info(spec).code)
        return task

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
        self.commits += self.wrote
        self.wrote = False
        if self.cache_rows and self.cache is not None:
            self.cache.index.written(row[0] for row in self.cache_rows)
        for action in self.logged:
            self.printing.pop(action, None)
        self.logged.clear()
        self.succeeded_ops.clear()
        self.pending.clear()
        self.inputs.clear()
        self.keys.clear()
        self.outputs.clear()
        self.notes.clear()
        self.cache_rows.clear()
        self.waits.clear()
        self.run_dirty = False
        listener = self.listener
        if listener.finished and not listener.changes and not listener.done:
            listener.closed = True


def _version() -> str | None:
    return getattr(sys.modules.get("flyte_nb"), "__version__", None)


def insert_run(store: Store, state: RunState, retry_of: str | None, taken: Callable[[str], bool],
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
