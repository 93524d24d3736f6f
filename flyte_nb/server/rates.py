"""Rate lanes of a run timeline the writer did not keep (a run recorded by an older flyte_nb).

The writer keeps every rate lane in the run's row as the pools grant (``engine.grant_lanes``), so
a run detail never scans; this is the fallback for older rows, read with their occupancy scan. A
rate pool of a run limits how many of its actions *start* per unit of time, so its lane is
built from the start times the store records: a tag's rate (``rate:<tag>``) counts the actions
carrying the tag, a map's (``rate:map.<group>``) the actions of that group, an environment's
(``rate:env.<name>``) the actions of its tasks (this run's share of a budget that may be shared).
The store records each rate pool's limit in units per second (``engine.rates.recorded_limit``).
Starts are counted in equal buckets of at least a second (at most ``timeline.MAX_POINTS / 2`` over
the run), each shown as a rate: a bucket at the limit draws at the dashed line.
"""

from __future__ import annotations

import json
import math
import sqlite3
from typing import Any

from .timeline import MAX_POINTS


def rate_series(conn: sqlite3.Connection, run_id: int, pools: dict[str, Any], start: float,
                end: float) -> list[dict[str, Any]]:
    """One lane per rate pool of the run whose actions the store can tell."""
    rates = {name: limit for name, limit in pools.items() if name.startswith("rate:")}
    if not rates:
        return []
    rows = conn.execute(
        "SELECT a.started_at, a.tags, a.grp, t.name FROM actions a JOIN tasks t ON t.id = a.task "
        "WHERE a.run = ? AND a.started_at IS NOT NULL AND a.phase != 'cached' "
        "UNION ALL SELECT r.started_at, a.tags, a.grp, t.name FROM attempts r "
        "JOIN actions a ON a.run = r.run AND a.number = r.action JOIN tasks t ON t.id = a.task "
        "WHERE r.run = ? AND r.number > 1 AND r.started_at IS NOT NULL", (run_id, run_id)).fetchall()
    out = []
    for name, limit in rates.items():
        takes = _taker(name[len("rate:"):])
        starts = [row[0] for row in rows if takes(row[1], row[2], row[3])]
        out.append(series(name, limit if isinstance(limit, (int, float)) else None, starts, start, end))
    return out


def _taker(what: str) -> Any:
    """Which recorded actions take units of the rate ``rate:<what>``."""
    if what.startswith("map."):
        group = what[len("map."):]
        return lambda tags, grp, task: grp == group
    if what.startswith("env."):
        prefix = what[len("env."):] + "."
        return lambda tags, grp, task: task.startswith(prefix)
    tag = json.dumps(what.split("#", 1)[0])  # rate:llm#2, the tag's second rate
    return lambda tags, grp, task: bool(tags) and tag in tags


def series(name: str, limit: float | None, starts: list[float], start: float, end: float) -> dict[str, Any]:
    """Starts per second over ``[start, end]``, in equal buckets, as a step series."""
    span = max(end - start, 1e-9)
    count = max(1, min(MAX_POINTS // 2, math.floor(span)))  # equal buckets of at least a second
    width = span / count
    buckets = [0] * count
    for at in starts:
        buckets[min(count - 1, max(0, int((at - start) / width)))] += 1
    points = [[start + i * width, round(n / width, 3)] for i, n in enumerate(buckets)]
    points.append([end, points[-1][1]])
    return {
        "name": name, "kind": "rate", "capacity": limit, "started": len(starts),
        "peak": max((p[1] for p in points), default=0), "mean": round(len(starts) / span, 3), "points": points,
    }
