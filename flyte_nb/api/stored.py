"""Reading recorded runs and actions from the run store: :class:`StoredAction`, and
:class:`StoreRecords`, through which a live action of this kernel reads its recorded values.

Below both the live :class:`~.run.Run` (which reads values back through :class:`StoreRecords`)
and :mod:`.history` (``runs()``, ``get_run()``, :class:`~.history.StoredRun`).
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from ..data import recorder
from ..data.pickling import loads
from ..data.store import Store, get_store, recording_enabled
from ..engine.action import Phase
from ..errors import RecordedError, StoreError, add_note

ACTIONS_SQL = ("SELECT a.*, t.name AS task_name, t.backend AS task_backend FROM actions a JOIN tasks t "
               "ON t.id = a.task WHERE a.run = ?")


def open_store() -> Store | None:
    """The run store with this kernel's records committed and dead kernels' runs marked; None when off."""
    if not recording_enabled():
        return None
    store = get_store()
    recorder.flush()
    store.reap()
    return store


def rows_of(store: Store, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
    with store.reading() as conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute(sql, params)]


def recorded_value(store: Store, value: bytes | str | None, what: str, note: str | None) -> Any:
    """Unpickle a recorded value (inline bytes, or the digest of its file)."""
    if value is None:
        raise StoreError(f"{what} was not recorded" + (f" ({note})" if note else ""))
    return loads(store.unpack(value))


def recorded_error(store: Store, fields: dict[str, Any], where: str) -> BaseException | None:
    """The recorded error with its own type when it unpickles, else a :class:`RecordedError`."""
    if not fields.get("error_type"):
        return None
    text = fields.get("error_traceback")
    error: BaseException | None = None
    if fields.get("error_blob"):
        try:
            error = recorded_value(store, fields["error_blob"], "error", None)
        except Exception:  # noqa: BLE001 - the class may not exist in this kernel
            error = None
    if not isinstance(error, BaseException):
        return RecordedError(fields["error_type"], fields.get("error_message") or "", text)
    if text:
        add_note(error, f"recorded traceback ({where}):\n{text.rstrip()}")
    return error


class StoredAction:
    """One recorded action: what :class:`~flyte_nb.Action` shows, plus its recorded values."""

    def __init__(self, store: Store, run: str, row: dict[str, Any]) -> None:
        self._store = store
        self._row = row
        self.run_name = run
        self.number: int = row["number"]
        self.parent_number: int | None = row["parent"]
        self.task: str = row["task_name"]
        self.group_name: str | None = row["grp"]
        self.tags: tuple[str, ...] = tuple(json.loads(row["tags"])) if row["tags"] else ()
        self.backend: str | None = row["task_backend"]
        self.index: int | None = row["map_index"]
        self.phase = Phase[row["phase"].upper()]
        self.attempts: int = row["attempts"]
        self.queued_at: float | None = row["queued_at"]
        self.started_at: float | None = row["started_at"]
        self.ended_at: float | None = row["ended_at"]
        self.cache_key: str | None = row["cache_key"]
        self.error_type: str | None = row["error_type"]
        self.error_message: str | None = row["error_message"]
        self.traceback: str | None = row["error_traceback"]
        self.note: str | None = row["note"]
        self._error: BaseException | None = None

    @property
    def name(self) -> str:
        return f"a{self.number}"

    @property
    def parent_name(self) -> str | None:
        return None if self.parent_number is None else f"a{self.parent_number}"

    @property
    def duration(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.ended_at or time.time()) - self.started_at

    @property
    def error(self) -> BaseException | None:
        if self._error is None:
            self._error = recorded_error(self._store, self._row, f"action {self.name} of run {self.run_name}")
        return self._error

    def inputs(self) -> dict[str, Any]:
        """The action's inputs by parameter name."""
        return recorded_value(self._store, self._row["inputs"], f"inputs of action {self.name}", self.note)

    def output(self) -> Any:
        """What the action returned (succeeded or cached actions)."""
        if self.phase not in (Phase.SUCCEEDED, Phase.CACHED):
            raise StoreError(f"action {self.name} of run {self.run_name} has no output: it is {self.phase}")
        return recorded_value(self._store, self._row["outputs"], f"output of action {self.name}", self.note)

    def attempt_history(self) -> list[dict[str, Any]]:
        """Every attempt of a retried action: number, phase, timings, error type and message."""
        return rows_of(self._store, "SELECT number, phase, started_at, ended_at, error_type, error_message, "
                     "error_traceback FROM attempts WHERE run = ? AND action = ? ORDER BY number",
                     (self._row["run"], self.number))

    @property
    def logs(self) -> str:
        """What the body printed (stdout and stderr, the last 256 KiB), as recorded."""
        rows = rows_of(self._store, "SELECT text FROM logs WHERE run = ? AND action = ?", (self._row["run"], self.number))
        return rows[0]["text"] if rows else ""

    def __repr__(self) -> str:
        return f"<StoredAction {self.name} {self.task} {self.phase} attempts={self.attempts}>"


class StoreRecords:
    """How a live action of this kernel reads its recorded values (``engine.spec.ActionRecords``):
    through the same :class:`StoredAction` that ``get_run`` gives for runs of other kernels."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def stored(self, action: Any) -> StoredAction:
        recorder.flush()
        run = action.run.name
        rows = rows_of(self.store, f"{ACTIONS_SQL} AND a.number = ?", (stored_run_id(self.store, run), action.number))
        if not rows:
            raise StoreError(f"action {action.name} of run {run} is not recorded (yet)")
        return StoredAction(self.store, run, rows[0])

    def inputs(self, action: Any) -> dict[str, Any]:
        return self.stored(action).inputs()

    def output(self, action: Any) -> Any:
        if action.phase not in (Phase.SUCCEEDED, Phase.CACHED):  # no store read for what memory knows
            raise StoreError(f"action {action.name} of run {action.run.name} has no output: it is {action.phase}")
        return self.stored(action).output()

    def attempt_history(self, action: Any) -> list[dict[str, Any]]:
        return self.stored(action).attempt_history()


def stored_run_id(store: Store, name: str) -> int:
    """The ``runs.id`` of the run called ``name``."""
    rows = rows_of(store, "SELECT id FROM runs WHERE name = ?", (name,))
    if not rows:
        raise StoreError(f"run {name} is not in the run store at {store.path}")
    return rows[0]["id"]
