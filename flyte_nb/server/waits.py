"""Why actions waited: each wait of an action's lifecycle, as the writer recorded it (``waits``).

An action waits only when a pool makes it (a free start records nothing), so these rows are few;
they are read for the page of actions being shown, never for the whole run. Each wait lasts
until the next one of the same action or until the action started; the current one (an action
still waiting) gives the action its ``reason``: ``"waiting for rate llm"``.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ..engine.limits import wait_reason


def attach(conn: sqlite3.Connection, run_id: int, actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give each action (a row of the actions listing) its ``waited`` list and current ``reason``."""
    numbers = [a["number"] for a in actions]
    found: dict[int, list[tuple[float, str]]] = {}
    if numbers:
        marks = ", ".join("?" * len(numbers))
        try:
            rows = conn.execute(f"SELECT action, at, pool FROM waits WHERE run = ? AND action IN ({marks}) "
                                "ORDER BY action, at", (run_id, *numbers)).fetchall()
        except sqlite3.OperationalError:  # a store from before waits were recorded
            rows = []
        for number, at, pool in rows:
            found.setdefault(number, []).append((at, pool))
    for action in actions:
        waits = found.get(action["number"], [])
        started = action["started_at"]
        waited = []
        for i, (at, pool) in enumerate(waits):
            until = waits[i + 1][0] if i + 1 < len(waits) else started if started is not None and started >= at else None
            waited.append({"pool": pool, "reason": wait_reason(pool), "at": at,
                           "seconds": None if until is None else round(until - at, 6)})
        action["waited"] = waited
        action["reason"] = waited[-1]["reason"] if waited and action["phase"] == "waiting" else None
    return actions
