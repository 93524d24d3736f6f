"""A run's state as plain JSON-able data: what the widget draws and the summaries print.

Built from the live ``RunState`` at most ~10 times a second, so it may be thorough; it never
walks all actions (a run may have 100,000), only counts, pools, groups and the recent tails.
"""

from __future__ import annotations

import reprlib
import time
from collections import deque
from itertools import islice
from typing import Any

from ..backends.base import default_backend, get_backend
from ..engine.action import Action, Phase
from ..engine.limits import wait_reason
from ..engine.run_state import RunState
from ..errors import user_traceback

RECENT = 8
_FAILED = (Phase.FAILED, Phase.TIMED_OUT)
MAX_TEXT = 120  # characters of a value shown in the widget


class _BoundedRepr(reprlib.Repr):
    """``reprlib.Repr`` that cuts big builtins *before* formatting them.

    ``reprlib`` formats any type it has no method for in full and cuts afterwards: a 50 MB
    ``bytes`` result cost 0.2 s per view refresh. Here binary data is sliced first and huge ints
    are described by size, so the cost of a summary does not grow with the value.
    """

    def __init__(self) -> None:
        super().__init__()
        self.maxstring = self.maxother = MAX_TEXT

    def _binary(self, value: Any, level: int) -> str:
        shown = repr(bytes(value[: self.maxstring]))  # at most 4 characters per byte
        if len(value) > self.maxstring or len(shown) > self.maxstring:
            shown = f"{shown[: self.maxstring - 4]}...{shown[-1]} ({len(value):,} bytes)"
        return shown if type(value) is bytes else f"{type(value).__name__}({shown})"

    repr_bytes = repr_bytearray = _binary

    def repr_memoryview(self, value: memoryview, level: int) -> str:
        return f"<memoryview of {value.nbytes:,} bytes>"

    def repr_int(self, value: int, level: int) -> str:
        if value.bit_length() > 4 * self.maxother:  # ~150 digits: formatting is quadratic, and capped at 4300
            return f"<int of {value.bit_length():,} bits>"
        return super().repr_int(value, level)


_repr = _BoundedRepr()


def result_text(value: Any) -> str:
    """A summary of ``value`` at most ~``MAX_TEXT`` characters long, whatever the value's size."""
    try:
        return _repr.repr(value)
    except Exception as error:  # noqa: BLE001 - a broken __repr__ must not break the view
        return f"<unrepresentable {type(value).__name__}: {error!r}>"


class Recent:
    """The last few results and errors of a run, as events arrive (cheap to update)."""

    def __init__(self, run: RunState | None = None) -> None:
        self.results: deque[list[Any]] = deque(maxlen=RECENT)  # [action, value, text once summarised]
        self.errors: deque[Action] = deque(maxlen=RECENT)
        if run is not None:  # a view opened late still shows the errors so far
            failed = (a for a in reversed(run.kept.copy().values()) if a.error is not None and a.phase in _FAILED)
            self.errors.extend(reversed(list(islice(failed, RECENT))))

    def add_result(self, action: Action, value: Any) -> None:
        self.results.append([action, value, None])

    def snapshot(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        for entry in self.results:
            if entry[2] is None:  # summarised once, then the value itself is let go
                entry[2], entry[1] = result_text(entry[1]), None
        results = [
            {"action": a.name, "task": a.spec.name, "group": a.group_name, "phase": str(a.phase), "text": text}
            for a, _, text in reversed(self.results)
        ]
        errors = [
            {
                "action": a.name, "task": a.spec.name, "group": a.group_name, "phase": str(a.phase),
                "type": type(a.error).__name__, "message": str(a.error)[:500],
                "traceback": user_traceback(a.error)[-8000:] if a.error else "",
            }
            for a in reversed(self.errors)
        ]
        return results, errors


def _dashboard(run: RunState) -> str | None:
    """The Dask dashboard of a run that uses the dask backend."""
    if "dask" not in run.backends:
        return None
    return getattr(get_backend("dask"), "dashboard_link", None)


def lineage(action: Action | None) -> tuple[int, ...]:
    """Action numbers from the driver down to ``action``: its place in the action tree."""
    numbers: list[int] = []
    while action is not None:
        numbers.append(action.number)
        action = action.parent
    return tuple(reversed(numbers))


def _short(action: Action) -> str:
    """The task's name without its environment's (``stage``, not ``pipeline.stage``)."""
    name, env = action.spec.name, action.spec.env_name
    return name[len(env) + 1:] if name.startswith(env + ".") else name


def snapshot(run: RunState, recent: Recent | None = None) -> dict[str, Any]:
    """Everything the widget shows, as of now; groups in tree order (each under the action that made it)."""
    now = time.time()
    counts = {str(p): run.counts[p] for p in Phase}
    groups = []
    placed = sorted(((lineage(g.parent), i, g) for i, g in enumerate(run.groups.values())), key=lambda t: t[:2])
    for path, _, group in placed:
        done = group.counts[Phase.SUCCEEDED] + group.counts[Phase.CACHED]
        elapsed = max(now - group.created_at, 1e-9)
        parent = group.parent
        groups.append({
            "name": group.name,
            "parent": None if parent is None else parent.name,
            "parent_task": None if parent is None else _short(parent),
            "parent_phase": None if parent is None else str(parent.phase),
            "depth": len(path),  # of the group's actions: 1 = children of the driver
            "total": group.total,
            "queued": group.counts[Phase.QUEUED] + group.counts[Phase.WAITING],
            "running": group.counts[Phase.RUNNING],
            "succeeded": done,
            "failed": group.counts[Phase.FAILED] + group.counts[Phase.TIMED_OUT],
            "cancelled": group.counts[Phase.CANCELLED],
            "rate": round(done / elapsed, 1),
        })
    results, errors = recent.snapshot() if recent is not None else ([], [])
    pools = run.statistics()
    return {
        "name": run.name,
        "phase": run.phase,
        "driver": run.driver.name,
        "backend": ", ".join(sorted(run.backends)) or run.driver.backend or default_backend(),
        "dashboard": _dashboard(run),
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "server_time": now,
        "counts": counts,
        "actions": run.action_count,
        "pools": [s._asdict() for s in pools],
        "waiting": waiting(pools),
        "groups": groups,
        "results": results,
        "errors": errors,
        "error": None if run.error is None else f"{type(run.error).__name__}: {run.error}",
    }


def waiting(pools: list[Any]) -> list[dict[str, Any]]:
    """Why actions wait, from the pools' waiters (never a walk over the actions): each pool with
    waiters is one reason, ``{"reason": "waiting for rate llm", "count": 3}``."""
    return [{"reason": wait_reason(s.name), "count": s.waiting} for s in pools if s.waiting]


def summary_line(state: dict[str, Any]) -> str:
    """One deterministic line (no times): ``Run NAME: succeeded · 8 succeeded``."""
    counts = ", ".join(f"{n} {phase}" for phase, n in state["counts"].items() if n)
    return f"Run {state['name']}: {state['phase']}" + (f" · {counts}" if counts else "")
