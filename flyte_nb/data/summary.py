"""A JSON summary of each finished run beside the other run files; ``Run.url`` points at it.

Small on purpose (counts, groups, limits, the first errors): written on the engine thread in
about a millisecond even for a 100,000-action run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..engine.action import Phase
from ..engine.events import Event, EventKind
from ..engine.run import RunState
from ..errors import user_traceback
from .home import home_dir

_MAX_ERRORS = 20


def summary_path(name: str) -> Path:
    return home_dir() / "runs" / f"{name}.json"


def summarize(run: RunState) -> dict[str, Any]:
    errors = []
    for action in run.actions:
        if action.error is not None and action.phase in (Phase.FAILED, Phase.TIMED_OUT):
            errors.append({
                "action": action.name, "task": action.task, "group": action.group_name,
                "type": type(action.error).__name__, "message": str(action.error),
                "traceback": user_traceback(action.error),
            })
            if len(errors) >= _MAX_ERRORS:
                break
    return {
        "name": run.name,
        "phase": run.phase,
        "driver": run.driver.name,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "counts": {str(phase): run.counts[phase] for phase in Phase},
        "groups": {g.name: {str(p): g.counts[p] for p in Phase} | {"total": g.total} for g in run.groups.values()},
        "pools": [s._asdict() for s in run.statistics()],
        "error": None if run.error is None else f"{type(run.error).__name__}: {run.error}",
        "errors": errors,
    }


def write_summary(event: Event) -> None:
    """Event listener: write the summary when a run finishes."""
    if event.kind is not EventKind.RUN_FINISHED:
        return
    path = summary_path(event.run.name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(summarize(event.run), indent=1, default=str))
        tmp.replace(path)
    except OSError:
        pass  # a read-only home must not fail the run
