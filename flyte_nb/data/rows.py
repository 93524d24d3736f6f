"""Rows of the ``actions`` table, as the run store's writer builds them (see :mod:`.recorder`).

Binding a parameter holds the GIL, and sqlite3 binds a ``None`` or a ``bytes`` in ~0.3 us (an
adaptation lookup) against ~0.03 us for a number: most actions (in a group; no tags, cache key,
error or note) therefore go in a *plain* row that leaves out the columns that would be NULL, with
their values bound as ``bytearray`` (never adapted). The other actions get a full row.

Most rows of a large run are children of a map over plain values that started and succeeded
between two batches: the engine-side listener keeps their columns (:data:`~.records.DONE_COLUMNS`),
:func:`succeeded_ops` only slices them, and the commit process (:mod:`.committer`) builds the rows
and pickles the values.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from ..engine.action import Action, Phase
from ..engine.spec import TaskSpec
from ..errors import user_traceback
from .cache import task_info
from .committer import Op
from .pickling import for_store as dumps
from .records import DONE_WIDTH
from .store import INLINE_MAX, Store

INSERT_ACTIONS = """
INSERT INTO actions (run, number, parent, task, grp, tags, map_index, phase, attempts, queued_at, started_at,
    ended_at, cache_key, inputs, outputs, error_type, error_message, error_traceback, error_blob, note)
"""
ACTION_WIDTH = 20
INSERT_PLAIN = """
INSERT INTO actions (run, number, parent, task, grp, map_index, phase, attempts, queued_at, started_at, ended_at,
    inputs, outputs)
"""
PLAIN_WIDTH = 13  # the columns left out are NULL; the upsert below treats them exactly as bound NULLs
UPSERT_ACTIONS = """
ON CONFLICT (run, number) DO UPDATE SET phase = excluded.phase, attempts = excluded.attempts,
    started_at = excluded.started_at, ended_at = excluded.ended_at,
    cache_key = coalesce(excluded.cache_key, cache_key), inputs = coalesce(excluded.inputs, inputs),
    outputs = coalesce(excluded.outputs, outputs), error_type = excluded.error_type,
    error_message = excluded.error_message, error_traceback = excluded.error_traceback,
    error_blob = excluded.error_blob, note = coalesce(excluded.note, note)
"""

FAILED = (Phase.FAILED, Phase.TIMED_OUT)  # the phases whose rows carry an error
_PHASE_NAMES = tuple(str(phase) for phase in Phase)  # str(Phase) costs a microsecond: too much per row
_NO_ERROR = (None, None, None, None)


def error_fields(error: BaseException | None, store: Store | None) -> tuple[Any, ...]:
    """Type, message, traceback text and (with ``store``) the pickled error, which is best effort."""
    if error is None:
        return (None, None, None, None)
    kind = type(error)
    pickled = None
    if store is not None:
        try:
            pickled = store.pack(dumps(error))
        except Exception:  # noqa: BLE001 - the type name, message and traceback text still tell the story
            pickled = None
    return (f"{kind.__module__}.{kind.__qualname__}", str(error), user_traceback(error), pickled)


def pending_rows(run: int, pending: dict[Action, Phase], inputs: dict[int, bytes], outputs: dict[int, bytes | str],
                 keys: dict[int, str], notes: dict[int, str], task_id: Callable[[TaskSpec], int], store: Store,
                 every: int, pause: float) -> tuple[list[Any], list[Any], list[Any]]:
    """Plain, full and attempt rows (flat) of the actions in ``pending``, each in the phase it had
    when drained, with the values drained for it (by action number); pausing every ``every`` rows."""
    pack = store.pack
    names = _PHASE_NAMES
    plain: list[Any] = []  # flat: PLAIN_WIDTH values per action (see insert_many)
    full: list[Any] = []  # flat: ACTION_WIDTH values per action
    attempts: list[tuple] = []
    tasks: dict[TaskSpec, int] = {}
    for count, (action, phase) in enumerate(pending.items(), 1):
        if count % every == 0:
            time.sleep(pause)
        number = action.number
        spec = action.spec
        task = tasks.get(spec)
        if task is None:
            task = tasks[spec] = task_id(spec)
        value = inputs.get(number)
        if value is not None:
            value = bytearray(value) if len(value) <= INLINE_MAX else pack(value)
        output = outputs.get(number)
        if type(output) is bytes:  # else None, or a value file's digest already
            output = bytearray(output) if len(output) <= INLINE_MAX else pack(output)
        terminal = phase >= 3  # Phase.terminal, without the property call
        parent = action.parent
        group = action.group
        index = action.index
        tags = action.tags
        if (parent is None or group is None or type(index) is not int or tags or phase in FAILED
                or (keys and number in keys) or (notes and number in notes)):
            error = _NO_ERROR if phase not in FAILED else error_fields(action.error, store)
            full.extend((
                run, number, None if parent is None else parent.number, task,
                None if group is None else group.name, json.dumps(tags) if tags else None,
                index if type(index) is int else None, names[phase], action.attempts, action.queued_at,
                action.started_at, action.ended_at if terminal else None, keys.get(number), value, output,
                *error, notes.get(number)))
        else:
            plain.extend((
                run, number, parent.number, task, group.name, index, names[phase], action.attempts,
                action.queued_at, action.started_at, action.ended_at if terminal else None, value, output))
        if terminal and action.history:
            attempts += attempt_rows(run, action, phase)
    return plain, full, [v for row in attempts for v in row]


def attempt_rows(run: int, action: Action, phase: Phase) -> list[tuple]:
    """Rows of the ``attempts`` table for an action that ended (in ``phase``) after several tries."""
    rows = []
    for attempt in list(action.history or ()):
        failed = "timed_out" if type(attempt.error).__name__ == "ActionTimeoutError" else "failed"
        rows.append((run, action.number, attempt.number, failed, attempt.started_at, attempt.ended_at,
                     *error_fields(attempt.error, None)[:3]))
    if rows and rows[-1][2] < action.attempts:  # the last attempt is only on the action itself
        error = error_fields(action.error if phase in FAILED else None, None)[:3]
        rows.append((run, action.number, action.attempts, str(phase), None, action.ended_at, *error))
    return rows


def succeeded_ops(rows: list[Any], run: int, task_id: Callable[[TaskSpec], int], ops: list[Op]) -> None:
    """``succeeded`` ops (:mod:`.committer`: the rows are built and the values pickled there), added
    to ``ops``, one per task, for drained fast-path rows (flat, :data:`~.records.DONE_COLUMNS`: the
    listener only keeps actions that fit a plain row). Rows leave ``rows`` once handled, so that
    after a failure the next batch resumes there."""
    if not rows:
        return
    specs = rows[0::DONE_WIDTH]
    if specs.count(specs[0]) == len(specs):  # the usual case: all of one map
        parts = [(specs[0], rows)]
    else:
        where: dict[TaskSpec, list[Any]] = {}
        for at in range(0, len(rows), DONE_WIDTH):
            where.setdefault(rows[at], []).extend(rows[at:at + DONE_WIDTH])
        parts = list(where.items())
    for spec, part in parts:
        names = task_info(spec).names
        assert names is not None and len(names) == 1, spec.name  # RunListener._row checked it
        ops.append(("succeeded", INSERT_PLAIN, UPSERT_ACTIONS, run, task_id(spec), names[0],
                    *(part[column::DONE_WIDTH] for column in range(1, DONE_WIDTH))))
    rows.clear()
