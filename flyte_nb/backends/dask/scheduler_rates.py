"""GCRA state kept on the Dask scheduler: what a cluster-scope rate runs there.

Self-contained on purpose (no flyte_nb imports): it is shipped by value, so a scheduler without
flyte_nb installed runs it too. The scheduler's event loop runs one call at a time, so each call
is atomic; its own clock is the one every client shares.
"""

from __future__ import annotations

import time
from typing import Any


def _rates(dask_scheduler: Any) -> dict[str, list[float]]:
    rates = getattr(dask_scheduler, "_flyte_nb_rates", None)
    if rates is None:
        rates = dask_scheduler._flyte_nb_rates = {}
    return rates


def take(name: str, cost: float, interval: float, burst: int, dask_scheduler: Any = None) -> float:
    """Take ``cost`` units if they conform now: 0.0, else the seconds until they could.

    The caller's interval and burst are the budget's (the last one set wins, as in a kernel).
    """
    state = _rates(dask_scheduler).setdefault(name, [0.0, interval, burst])
    tat, old_interval, _ = state
    now = time.time()
    if old_interval != interval and tat > now:  # a new rate re-prices the backlog
        tat = now + (tat - now) * interval / old_interval
    state[:] = [tat, interval, burst]
    due = tat - (burst - min(cost, burst)) * interval
    if now < due:
        return due - now
    state[0] = max(tat, now) + cost * interval
    return 0.0


def adjust(name: str, units: float, dask_scheduler: Any = None) -> float:
    """Move the schedule by ``units`` (a refund when negative); the units available afterwards."""
    state = _rates(dask_scheduler).get(name)
    if state is None:
        return 0.0
    state[0] += units * state[1]
    return state[2] - max(0.0, state[0] - time.time()) / state[1]


def available(name: str, dask_scheduler: Any = None) -> float | None:
    state = _rates(dask_scheduler).get(name)
    if state is None:
        return None
    return state[2] - max(0.0, state[0] - time.time()) / state[1]
