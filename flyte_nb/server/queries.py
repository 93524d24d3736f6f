"""The REST API's answers, read straight from the run store as JSON-ready dicts.

Plain SQL over the schema (:mod:`flyte_nb.data.schema`) rather than ``flyte_nb.get_run``: the
server never unpickles user objects (see :mod:`.preview`), and a page of runs must cost one
indexed query, not a Python object per action. Paths are made relative to the server's root so
JupyterLab can open them; a notebook outside the root has no path.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from typing import Any

from ..data.store import LIVE_PHASES, RUN_PHASES, Store
from ..errors import StoreError
from . import rates, timeline, waits
from .preview import LOAD_MAX, preview

STATUSES = ("live", *RUN_PHASES)
ACTION_PHASES = ("queued", "waiting", "running", "succeeded", "failed", "timed_out", "cancelled", "cached")
_RUN_COLUMNS = ("id, name, driver, phase, created_at, started_at, ended_at, actions, counts, error_type, "
                "error_message, abort_reason, notebook, kernel, cell, retry_of")
_ACTION_COLUMNS = ("a.number, t.name, a.grp, a.map_index, a.phase, a.attempts, a.queued_at, a.started_at, a.ended_at, "
                   "a.error_type, a.error_message, a.parent")
ERRORS_SHOWN = 50


class Paths:
    """Notebook paths as the kernel recorded them (absolute) ↔ as JupyterLab names them (relative)."""

    def __init__(self, root: str) -> None:
        self.root = os.path.realpath(root)

    def relative(self, path: str | None) -> str | None:
        if not path:
            return None
        full = os.path.realpath(path)
        if os.path.commonpath([full, self.root]) != self.root:
            return None
        return os.path.relpath(full, self.root).replace(os.sep, "/")

    def absolute(self, relative: str) -> str:
        return os.path.realpath(os.path.join(self.root, relative.lstrip("/")))


def _record(text: str | None) -> dict[str, Any]:
    """A JSON object column ({} when empty or damaged: one bad row must not take the whole page down)."""
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _duration(started: float | None, ended: float | None, live: bool) -> float | None:
    if started is None:
        return None
    end = ended if ended is not None else (time.time() if live else None)
    return None if end is None else max(0.0, end - started)


def _error(kind: str | None, message: str | None, traceback: str | None = None, *, full: bool = False) -> Any:
    if kind is None:
        return None
    error = {"type": kind, "message": message}
    if full:
        error["traceback"] = traceback
    return error


def _run_summary(row: tuple, paths: Paths) -> dict[str, Any]:
    (_, name, driver, phase, created, started, ended, actions, counts, error_type, error_message, abort_reason,
     notebook, kernel, cell, retry_of) = row
    live = phase in LIVE_PHASES
    return {
        "name": name, "driver": driver, "phase": phase, "created_at": created, "started_at": started,
        "ended_at": ended, "duration": _duration(started, ended, live), "actions": actions,
        "counts": _record(counts), "error": _error(error_type, error_message),
        "abort_reason": abort_reason, "notebook": paths.relative(notebook), "kernel": kernel, "cell": cell,
        "live": live, "retry_of": retry_of,
    }


def list_runs(conn: sqlite3.Connection, paths: Paths, *, status: str | None = None, notebook: str | None = None,
              kernel: str | None = None, cell: str | None = None, limit: int = 50,
              before: int | None = None) -> dict[str, Any]:
    """A page of runs, newest first; ``next`` is the cursor of the following page."""
    where, args = [], []
    if status == "live":
        where.append(f"phase IN {LIVE_PHASES}")
    elif status:
        where.append("phase = ?")
        args.append(status)
    if notebook:
        where.append("notebook = ?")
        args.append(paths.absolute(notebook))
    for column, value in (("kernel", kernel), ("cell", cell)):
        if value:
            where.append(f"{column} = ?")
            args.append(value)
    filtered = " AND ".join(where) or "1"
    total = conn.execute(f"SELECT count(*) FROM runs WHERE {filtered}", args).fetchone()[0]
    page_where = filtered + (" AND id < ?" if before is not None else "")
    page_args = [*args, *([before] if before is not None else [])]
    rows = conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE {page_where} ORDER BY id DESC LIMIT ?",
                        [*page_args, limit + 1]).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    return {"runs": [_run_summary(row, paths) for row in rows], "total": total,
            "next": str(rows[-1][0]) if more else None}


def _run_row(conn: sqlite3.Connection, name: str) -> tuple | None:
    return conn.execute(f"SELECT {_RUN_COLUMNS}, error_traceback, groups, pools, group_counts, timeline FROM runs "
                        "WHERE name = ?", (name,)).fetchone()


def run_version(conn: sqlite3.Connection, name: str) -> str | None:
    """What changes whenever anything the run's answers show changes (one indexed read): the ETag's
    source, checked before any heavy query. ``None`` if the run is unknown."""
    row = conn.execute("SELECT id, phase, updated_at, actions FROM runs WHERE name = ?", (name,)).fetchone()
    return None if row is None else "-".join(map(str, row))


def run_detail(conn: sqlite3.Connection, paths: Paths, name: str) -> dict[str, Any] | None:
    """One run with its groups, limits, slot-occupancy timeline and first errors; ``None`` if unknown."""
    row = _run_row(conn, name)
    if row is None:
        return None
    run_id = row[0]
    detail = _run_summary(row[:16], paths)
    traceback, groups_json, pools_json, group_counts, timeline_json = row[16:]
    if detail["error"] is not None:
        detail["error"]["traceback"] = traceback
    limits = {group: tuple(entry) for group, entry in _record(groups_json).items()
              if isinstance(entry, list) and len(entry) in (2, 3)}  # {group: (total, capacity[, parent])}
    pools = _record(pools_json)
    detail["pools"] = [{"name": pool, "capacity": capacity} for pool, capacity in pools.items()]
    counted = _record(group_counts) if group_counts else None  # kept by the writer (older stores: counted here)
    detail["groups"] = _groups(conn, run_id, limits, counted)
    kept = _record(timeline_json) if timeline_json else None
    if kept and "series" in kept:  # kept by the writer as the run went, rate lanes included
        detail["timeline"] = kept
    else:
        detail["timeline"] = _timeline(conn, run_id, detail, limits, pools)
    detail["errors"] = [
        {"number": number, "name": f"a{number}", "task": task, "group": group, "type": kind, "message": message}
        for number, task, group, kind, message in conn.execute(
            "SELECT a.number, t.name, a.grp, a.error_type, a.error_message FROM actions a INDEXED BY actions_errors "
            "JOIN tasks t ON t.id = a.task WHERE a.run = ? AND a.error_type IS NOT NULL ORDER BY a.number LIMIT ?", (run_id, ERRORS_SHOWN))]
    return detail


def _groups(conn: sqlite3.Connection, run_id: int, limits: dict[str, tuple],
            counted: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Each group's progress, and where it sits in the action tree: the action that made it
    (``parent``, the parent of its actions) and the depth of its actions (1 = the driver's children).

    Counts come from ``counted`` (kept by the writer as the run goes) and parents from ``limits``
    when the run recorded them; older runs are counted here."""
    groups: dict[str, dict[str, Any]] = {}
    for group, (total, capacity, *made_by) in limits.items():
        groups[group] = {"name": group, "total": total, "counts": {}, "capacity": capacity,
                         "parent": made_by[0] if made_by else None}
    if counted is not None:
        rows = [(group, phase, n, None) for group, counts in counted.items() if isinstance(counts, dict)
                for phase, n in counts.items()]
    else:
        rows = conn.execute("SELECT grp, phase, count(*), min(parent) FROM actions WHERE run = ? AND grp IS NOT NULL "
                            "GROUP BY grp, phase", (run_id,)).fetchall()
    for group, phase, count, parent in rows:
        entry = groups.setdefault(group, {"name": group, "total": None, "counts": {}, "capacity": None, "parent": None})
        entry["counts"][phase] = count
        if parent is not None and (entry["parent"] is None or parent < entry["parent"]):
            entry["parent"] = parent
    parents = {g["parent"] for g in groups.values() if g["parent"] is not None}
    depths = _depths(conn, run_id, parents)
    tasks = _task_names(conn, run_id, parents)
    for entry in groups.values():
        parent = entry["parent"]
        entry["parent_task"] = tasks.get(parent)
        entry["depth"] = depths.get(parent, 0) + 1 if parent is not None else 1
    return sorted(groups.values(), key=lambda g: -1 if g["parent"] is None else g["parent"])  # siblings together


def _depths(conn: sqlite3.Connection, run_id: int, numbers: Any) -> dict[int, int]:
    """How deep each of ``numbers`` sits in the action tree (the driver: 0), walking parents in SQL:
    one indexed lookup per action and level, whatever the run's size."""
    numbers = sorted(numbers)
    depths: dict[int, int] = {}
    for start in range(0, len(numbers), _CHUNK):
        chunk = numbers[start:start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        depths.update(conn.execute(
            "WITH RECURSIVE up(number, above, depth) AS ("
            f"SELECT number, parent, 0 FROM actions WHERE run = ? AND number IN ({marks}) "
            "UNION ALL SELECT up.number, a.parent, up.depth + 1 FROM up JOIN actions a ON a.run = ? AND a.number = up.above) "
            "SELECT number, max(depth) FROM up GROUP BY number", [run_id, *chunk, run_id]))
    return depths


def _task_names(conn: sqlite3.Connection, run_id: int, numbers: Any) -> dict[int, str]:
    numbers = sorted(numbers)
    names: dict[int, str] = {}
    for start in range(0, len(numbers), _CHUNK):
        chunk = numbers[start:start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        names.update(conn.execute(f"SELECT a.number, t.name FROM actions a JOIN tasks t ON t.id = a.task "
                                  f"WHERE a.run = ? AND a.number IN ({marks})", [run_id, *chunk]))
    return names


_CHUNK = 500  # numbers per IN (...): under SQLite's bound on parameters


def _timeline(conn: sqlite3.Connection, run_id: int, run: dict[str, Any], limits: dict[str, tuple],
              pools: dict[str, int | None]) -> dict[str, Any]:
    """Running leaf actions over time: the run, each group, each throttled tag (parents only wait)."""
    rows = conn.execute(
        "SELECT grp, tags, started_at, coalesce(ended_at, ?) FROM actions WHERE run = ? AND started_at IS NOT NULL "
        "AND phase != 'cached' AND number NOT IN (SELECT parent FROM actions WHERE run = ? AND parent IS NOT NULL)",
        (time.time(), run_id, run_id)).fetchall()
    start = run["started_at"] or run["created_at"]
    end = run["ended_at"] or max([start, *(r[3] for r in rows)])
    intervals = [(r[2], r[3]) for r in rows]
    out = [timeline.series("run", "run", None, intervals, start, end)]
    by_group: dict[str, list[tuple[float, float]]] = {}
    for group, _, began, ended in rows:
        if group is not None:
            by_group.setdefault(group, []).append((began, ended))
    for group, spans in by_group.items():
        out.append(timeline.series(group, "group", limits.get(group, (None, None))[1], spans, start, end))
    for pool, capacity in pools.items():
        if pool.startswith("tag:"):
            tag = json.dumps(pool[4:])
            spans = [(r[2], r[3]) for r in rows if r[1] and tag in r[1]]
            out.append(timeline.series(pool, "tag", capacity, spans, start, end))
    out.extend(rates.rate_series(conn, run_id, pools, start, end))
    return {"start": start, "end": end, "series": out}


def _action_row(row: tuple, live: bool) -> dict[str, Any]:
    number, task, group, index, phase, attempts, queued, started, ended, error_type, error_message, parent = row
    return {
        "number": number, "name": f"a{number}", "task": task, "group": group, "index": index, "phase": phase,
        "attempts": attempts, "queued_at": queued, "started_at": started, "ended_at": ended,
        "duration": _duration(started, ended, live and phase in ("running", "waiting")),
        "error": _error(error_type, error_message), "parent": parent, "depth": None,
    }


def _with_depths(conn: sqlite3.Connection, run_id: int, actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fill in each action's depth in the action tree (0: the driver, 1: its children …)."""
    depths = _depths(conn, run_id, {a["number"] for a in actions})
    for action in actions:
        action["depth"] = depths.get(action["number"])
    return actions


def _run_id(conn: sqlite3.Connection, name: str) -> tuple[int, bool] | None:
    row = conn.execute("SELECT id, phase FROM runs WHERE name = ?", (name,)).fetchone()
    return None if row is None else (row[0], row[1] in LIVE_PHASES)


def _total(conn: sqlite3.Connection, run_id: int, phase: str | None, group: str | None, where: str,
           args: list[Any]) -> int:
    """How many actions match, from the counts the writer keeps where it can (no scan of a big run)."""
    actions, counts, group_counts = conn.execute("SELECT actions, counts, group_counts FROM runs WHERE id = ?",
                                                 (run_id,)).fetchone()
    if group is None and counts is not None:
        return actions if phase is None else int(_record(counts).get(phase, 0))
    if group is not None and group_counts is not None:
        counted = _record(group_counts).get(group)
        if isinstance(counted, dict):
            return sum(counted.values()) if phase is None else int(counted.get(phase, 0))
        return 0
    return conn.execute(f"SELECT count(*) FROM actions a WHERE {where}", args).fetchone()[0]


def list_actions(conn: sqlite3.Connection, name: str, *, offset: int = 0, limit: int = 100, phase: str | None = None,
                 group: str | None = None, after: int | None = None, before: int | None = None) -> dict[str, Any] | None:
    """A page of a run's actions in call order; ``None`` if the run is unknown.

    Pages by keyset: ``after`` (the last number of the previous page) or ``before`` (the first of the
    next one) make the page an indexed range read, as fast at the millionth action as at the first;
    ``offset`` still works (it walks the rows it skips). ``next`` / ``prev`` are the cursors of the
    neighbouring pages (``None`` at either end). ``total`` counts the matching actions (of a live
    run it counts those queued, not yet recorded, too).
    """
    found = _run_id(conn, name)
    if found is None:
        return None
    run_id, live = found
    where, args = ["a.run = ?"], [run_id]
    for column, value in (("a.phase", phase), ("a.grp", group)):
        if value:
            where.append(f"{column} = ?")
            args.append(value)
    filtered = " AND ".join(where)
    total = _total(conn, run_id, phase or None, group or None, filtered, args)
    columns = f"SELECT {_ACTION_COLUMNS} FROM actions a JOIN tasks t ON t.id = a.task WHERE {filtered}"
    if before is not None:
        rows = conn.execute(f"{columns} AND a.number < ? ORDER BY a.number DESC LIMIT ?",
                            [*args, before, limit + 1]).fetchall()
        more_before = len(rows) > limit
        rows = rows[:limit][::-1]
        more_after = True
    else:
        keyset = " AND a.number > ?" if after is not None else ""
        rows = conn.execute(f"{columns}{keyset} ORDER BY a.number LIMIT ? OFFSET ?",
                            [*args, *([after] if after is not None else []), limit + 1,
                             0 if after is not None else offset]).fetchall()
        more_after = len(rows) > limit
        rows = rows[:limit]
        more_before = (after is not None and after >= 0) or offset > 0
    shown = waits.attach(conn, run_id, _with_depths(conn, run_id, [_action_row(row, live) for row in rows]))
    return {"total": total, "actions": shown,
            "next": rows[-1][0] if rows and more_after else None,
            "prev": rows[0][0] if rows and more_before else None}


def action_detail(conn: sqlite3.Connection, store: Store, name: str, number: int) -> dict[str, Any] | None:
    """One action with its error traceback, attempts, logs and value previews; ``None`` if unknown."""
    found = _run_id(conn, name)
    if found is None:
        return None
    run_id, live = found
    row = conn.execute(f"SELECT {_ACTION_COLUMNS}, a.error_traceback, {_bounded('a.inputs')}, {_bounded('a.outputs')}, "
                       "a.note FROM actions a JOIN tasks t ON t.id = a.task WHERE a.run = ? AND a.number = ?",
                       (run_id, number)).fetchone()
    if row is None:
        return None
    detail = waits.attach(conn, run_id, _with_depths(conn, run_id, [_action_row(row[:12], live)]))[0]
    traceback, inputs, inputs_size, outputs, outputs_size, note = row[12:]
    if detail["error"] is not None:
        detail["error"]["traceback"] = traceback
    detail["attempt_history"] = [
        {"number": n, "phase": phase, "started_at": started, "ended_at": ended,
         "error": _error(kind, message, tb, full=True)}
        for n, phase, started, ended, kind, message, tb in conn.execute(
            "SELECT number, phase, started_at, ended_at, error_type, error_message, error_traceback FROM attempts "
            "WHERE run = ? AND action = ? ORDER BY number", (run_id, number))]
    logs = conn.execute("SELECT text FROM logs WHERE run = ? AND action = ?", (run_id, number)).fetchone()
    detail["logs"] = logs[0] if logs else ""
    detail["note"] = note
    detail["inputs"] = _value(store, inputs, inputs_size)
    detail["output"] = _value(store, outputs, outputs_size)
    return detail


def _bounded(column: str) -> str:
    """A value column and its size, the value left unread when it is too large to preview (a blob's
    length is in its record header: SQLite does not read the blob to answer it)."""
    return (f"CASE WHEN typeof({column}) = 'blob' AND length({column}) > {LOAD_MAX} THEN NULL ELSE {column} END, "
            f"length({column})")


def _value(store: Store, value: bytes | str | None, size: int | None) -> dict[str, Any]:
    if value is None:
        return preview(None, size)
    try:
        data, size = store.read_value(value, LOAD_MAX)
    except StoreError as error:  # a missing or damaged value file: say so in the preview
        return {"preview": f"<{error}>", "size": None}
    return preview(data, size)
