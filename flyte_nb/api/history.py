"""Run history: ``flyte_nb.runs()``, ``flyte_nb.get_run()`` and :class:`StoredRun`.

Everything here reads the run store, so it works the same after the kernel that made a run is
gone. A run this kernel still holds in memory comes back as its live :class:`~.run.Run` handle
(it can be waited on and aborted); any other as a :class:`StoredRun` with the same reading API.
Reads first commit this kernel's pending records and mark runs of dead kernels, so what they show
is current.
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Iterable
from typing import Any

from ..data.store import RUN_PHASES, Store, get_store, recording_enabled
from ..data.origin import run_url
from ..engine.action import Phase
from ..errors import ConfigurationError, RecordedError, RunAbortedError, RunNotFoundError
from .action_pages import ActionList, peak_concurrency
from .run import Run, kernel_runs, retry_run, wait_seconds
from .stored import ACTIONS_SQL, StoredAction, open_store, recorded_error, rows_of
from .task import TaskTemplate

_FINAL = ("succeeded", "failed", "aborted")


def _phase_names(status: str | Iterable[str] | None) -> tuple[str, ...] | None:
    if status is None:
        return None
    names = (status,) if isinstance(status, str) else tuple(status) if isinstance(status, Iterable) else None
    if not names or not all(isinstance(s, str) and s in RUN_PHASES for s in names):
        raise ConfigurationError(f"status must be one of {', '.join(RUN_PHASES)} (or a list of them), got {status!r}")
    return names


def runs(limit: int | None = 20, status: str | Iterable[str] | None = None) -> list[Run | StoredRun]:
    """Recorded runs, newest first: at most ``limit`` (None: all), only those in ``status`` if given."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigurationError(f"limit must be a whole number >= 1 or None, got {limit!r}")
    phases = _phase_names(status)
    live = {run.name: run for run in kernel_runs()}
    store = open_store()
    if store is None:  # recording off: this kernel's runs are all there is
        found = [r for r in reversed(live.values()) if phases is None or r.phase in phases]
        return list(found[:limit] if limit else found)
    where = f"WHERE phase IN ({', '.join('?' * len(phases))})" if phases else ""
    rows = rows_of(store, f"SELECT * FROM runs {where} ORDER BY created_at DESC, rowid DESC LIMIT ?",
                 (*(phases or ()), -1 if limit is None else limit))
    return [live.get(row["name"]) or StoredRun(store, row) for row in rows]


def get_run(name: str) -> Run | StoredRun:
    """The run called ``name``: live if this kernel holds it, else read from the run store."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigurationError(f"get_run needs a run name (a string), got {name!r}")
    here = get_store().path if recording_enabled() else None  # a held run of another home is not this one
    for run in kernel_runs():
        if run.name == name and (here is None or run.store_path in (None, here)):
            return run
    store = open_store()  # only now: it waits for the writer, which a live run held here need not
    if store is None:
        raise RunNotFoundError(f"no run named {name!r} in this kernel, and the run store is off (FLYTE_NB_STORE)")
    rows = rows_of(store, "SELECT * FROM runs WHERE name = ?", (name,))
    if not rows:
        raise RunNotFoundError(f"no run named {name!r} in the run store at {store.path}; "
                               "flyte_nb.runs() lists the recorded runs")
    return StoredRun(store, rows[0])


class StoredRun:
    """A run read from the run store; the reading API of :class:`~flyte_nb.Run`."""

    def __init__(self, store: Store, row: dict[str, Any]) -> None:
        self._store = store
        self._row = row
        self._error: BaseException | None = None

    # ----------------------------------------------------------- identity
    @property
    def name(self) -> str:
        return self._row["name"]

    @property
    def driver(self) -> str:
        """Task name of the run's driver."""
        return self._row["driver"]

    @property
    def phase(self) -> str:
        """``queued``, ``running``, ``succeeded``, ``failed`` or ``aborted``."""
        return self._row["phase"]

    status = phase

    @property
    def created_at(self) -> float:
        return self._row["created_at"]

    @property
    def started_at(self) -> float | None:
        return self._row["started_at"]

    @property
    def ended_at(self) -> float | None:
        return self._row["ended_at"]

    @property
    def abort_reason(self) -> str | None:
        """Why the run was aborted (``kernel exited`` when its kernel died mid-run)."""
        return self._row["abort_reason"]

    @property
    def retry_of(self) -> str | None:
        """The run this one retried, if any."""
        return self._row["retry_of"]

    @property
    def url(self) -> str:
        """Where the run can be looked at: the Runs panel of the Jupyter server, or the run store's file."""
        return run_url(self.name, self._store.path)

    @property
    def duration(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.ended_at or time.time()) - self.started_at

    @property
    def counts(self) -> dict[str, int]:
        recorded = json.loads(self._row["counts"] or "{}")
        return {str(phase): recorded.get(str(phase), 0) for phase in Phase}

    def done(self) -> bool:
        return self.phase in _FINAL

    def refresh(self) -> StoredRun:
        """Read the run again (it may still be going in another kernel)."""
        self._store.reap()
        self._row = rows_of(self._store, "SELECT * FROM runs WHERE name = ?", (self.name,))[0]
        self._error = None
        return self

    # ------------------------------------------------------------ waiting
    def wait(self, timeout: float | str | None = None, poll: float = 0.2) -> None:
        """Return once the run has ended (polling the store while another kernel runs it)."""
        timeout = wait_seconds(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.done():
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"run {self.name} is still {self.phase} after {timeout:g}s")
            time.sleep(poll)
            self.refresh()

    def outputs(self, timeout: float | None = None) -> Any:
        """The driver's return value; raises the run's recorded error, with its own type when possible."""
        self.wait(timeout)
        if self.phase == "aborted":
            raise RunAbortedError(f"run {self.name} was aborted" + (f": {self.abort_reason}" if self.abort_reason else ""))
        if self.phase == "failed":
            raise self.error or RecordedError("unknown", f"run {self.name} failed")
        return self.action("a0").output()

    result = outputs

    def inputs(self) -> dict[str, Any]:
        """The driver's inputs by parameter name."""
        return self.action("a0").inputs()

    # ------------------------------------------------------------- records
    @property
    def error(self) -> BaseException | None:
        if self._error is None:
            self._error = recorded_error(self._store, self._row, f"run {self.name}")
        return self._error

    @property
    def actions(self) -> ActionList:
        """Every recorded action in call order, read from the store page by page (bounded memory)."""
        run_id = self._row["id"]
        return ActionList(self._store, self.name, lambda: run_id)

    def action(self, name: str) -> StoredAction:
        number = int(name[1:]) if isinstance(name, str) and name[:1] == "a" and name[1:].isdigit() else -1
        rows = rows_of(self._store, f"{ACTIONS_SQL} AND a.number = ?", (self._row["id"], number))
        if not rows:
            raise KeyError(f"run {self.name} has no recorded action {name!r}")
        return StoredAction(self._store, self.name, rows[0])

    @property
    def errors(self) -> list[StoredAction]:
        """The actions that failed or timed out."""
        rows = rows_of(self._store, f"{ACTIONS_SQL} AND a.phase IN ('failed', 'timed_out') ORDER BY a.number",
                     (self._row["id"],))
        return [StoredAction(self._store, self.name, row) for row in rows]

    @property
    def groups(self) -> dict[str, dict[str, int]]:
        """Per group: counts per phase."""
        groups: dict[str, dict[str, int]] = {}
        for row in rows_of(self._store, "SELECT grp, phase, count(*) AS n FROM actions WHERE run = ? AND grp IS NOT NULL "
                         "GROUP BY grp, phase ORDER BY min(number)", (self._row["id"],)):
            groups.setdefault(row["grp"], {str(p): 0 for p in Phase})[row["phase"]] = row["n"]
        return groups

    def peak_concurrency(self, task: TaskTemplate | str | None = None, tag: str | None = None) -> int:
        """The most actions (other than the driver) that ran at one instant, from recorded times."""
        name = task.name if isinstance(task, TaskTemplate) else task
        return peak_concurrency(self._store, self._row["id"], name, tag)

    # -------------------------------------------------------------- retry
    def retry_failed(self, task: TaskTemplate | None = None, name: str | None = None) -> Run:
        """A new run of the same driver and inputs; what succeeded here is served from the store.

        ``task``: the driver, needed when this kernel did not define it (after a restart, run the
        cell that defines it and pass it).
        """
        task = task if task is not None else _known_task(self.driver)
        if task is None:
            raise ConfigurationError(f"run {self.name} was made by another kernel: pass its driver, "
                                     f"run.retry_failed({self.driver.rsplit('.', 1)[-1]})")
        if not isinstance(task, TaskTemplate):
            raise ConfigurationError(f"retry_failed needs the driver task, got {task!r}")
        if task.name != self.driver:
            raise ConfigurationError(f"run {self.name} was driven by task {self.driver}, not {task.name}")
        if not self.done():
            raise ConfigurationError(f"run {self.name} is still {self.phase}; wait for it or abort it first")
        inputs = self.inputs()
        if set(inputs) == {"*args", "**kwargs"}:
            args, kwargs = inputs["*args"], inputs["**kwargs"]
        else:
            try:
                call = inspect.BoundArguments(inspect.signature(task.func), dict(inputs))
                args, kwargs = call.args, call.kwargs
            except (TypeError, ValueError) as error:
                raise ConfigurationError(f"the recorded inputs of run {self.name} do not fit {task.name}: {error}") from None
        return retry_run(self.name, task, args, kwargs, name)

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={v}" for k, v in self.counts.items() if v)
        return f"<StoredRun {self.name} {self.phase} [{counts}]>"


def _known_task(name: str) -> TaskTemplate | None:
    for run in reversed(kernel_runs()):
        if run.driver.name == name:
            return run.driver
    return None
