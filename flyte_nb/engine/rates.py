"""Rate pools: a smooth start schedule (GCRA), the time-based sibling of slot pools.

A slot pool bounds how many run at once; a rate pool bounds how many *start* per unit of time.
The state is one number, the theoretical arrival time ``tat``: a grant of ``cost`` conforms once
``now >= tat - (burst - min(cost, burst)) * interval`` and moves ``tat`` on by ``cost * interval``,
so in any window of ``t`` seconds at most ``burst + t / interval`` units are granted (plus the
``SLACK`` below), with no start-up burst beyond ``burst``. Waiters queue FIFO and only the head
has a timer (``loop.call_at``): one wake-up per grant, never every waiter on every tick. A
waiter cancelled before its grant consumes nothing; one cancelled just after gets it refunded.
Rate pools sort after every slot pool in the global order: an action takes its tokens last,
when all its slots are held, so it starts at the instant of its grant, and since a rate wait
always ends by itself, holding slots while waiting for one can never deadlock.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import re
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..errors import ConfigurationError
from .grant_lanes import Lanes, Recent

SLACK = 0.010
"""Seconds a timer-driven grant may come late and still keep the schedule anchored (``tat`` moves
on by the grant's own cost, not from the late ``now``), so in a window of ``t`` seconds at most
``burst + (t + SLACK) / interval`` units start, and ordinary lateness costs no rate. Measured on
this 2-core machine: the engine loop's wake-ups come ~1 ms late when it is quiet (epoll's
millisecond), and 2-11 ms late in 1 % of them at a load of 4-6 (the thread waits for a CPU); at
2 ms those lost 3-15 % of a 2,000/s rate, at 10 ms 0-5 %. Only lateness beyond it is lost: making
it up would put more than the bound in the window that starts at the late grant."""

_monotonic = time.monotonic
_RATE_ORDER = 1 << 60  # after every slot pool (those count up from 0)
_order = itertools.count()
_UNITS = {"ms": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_PER = re.compile(r"^\s*(\d+(?:\.\d+)?)?\s*([a-z]+)\s*$")


def per_seconds(per: object) -> float:
    """``"1s"``, ``"1m"``, ``"500ms"``, ``"h"`` or a number of seconds → seconds."""
    if isinstance(per, (int, float)) and not isinstance(per, bool):
        if per > 0 and math.isfinite(per):
            return float(per)
    elif isinstance(per, str):
        match = _PER.match(per.lower())
        if match and match.group(2) in _UNITS:
            value = float(match.group(1) or 1) * _UNITS[match.group(2)]
            if value > 0:
                return value
    raise ConfigurationError(f"per must be a duration like '1s', '1m', '500ms' or a number of seconds > 0, got {per!r}")


@dataclass(frozen=True, init=False)
class Rate:
    """``Rate(60, per="1m", burst=1)``: at most ``limit`` units per ``per``, ``burst`` back to back."""

    limit: float
    per: float
    burst: int
    interval: float  # seconds between two units on the smooth schedule
    window: float  # seconds over which statistics count grants (``per``, at most a minute)

    def __init__(self, limit: float, per: str | float = "1s", burst: int = 1) -> None:
        if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not (limit > 0 and math.isfinite(limit)):
            raise ConfigurationError(f"Rate limit must be a number > 0 (units per `per`), got {limit!r}")
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ConfigurationError(f"Rate burst must be a whole number >= 1 (back-to-back starts allowed), got {burst!r}")
        object.__setattr__(self, "limit", limit)
        object.__setattr__(self, "per", per_seconds(per))
        object.__setattr__(self, "burst", burst)
        object.__setattr__(self, "interval", self.per / limit)
        object.__setattr__(self, "window", min(self.per, 60.0))

    def pool(self, name: str) -> RatePool:
        return RatePool(self, name)

    def __repr__(self) -> str:
        limit = int(self.limit) if float(self.limit).is_integer() else self.limit
        per = f"{self.per:g}s"
        return f"Rate({limit}, per={per!r}" + (f", burst={self.burst})" if self.burst != 1 else ")")


class RateStatistics(NamedTuple):
    """A snapshot of a rate pool, shaped like ``PoolStatistics`` with the rate's own figures.

    ``capacity`` is the limit over the pool's window (``per``, at most a minute) and ``holders``
    the units granted during the last window, so a drawing of slots shows use against the limit;
    ``rate`` is units per second, ``available`` the units grantable back to back right now
    (negative while in debt), ``granted_per_s`` the measured rate over the window.
    """

    name: str
    capacity: Any
    holders: Any
    waiting: int
    rate: float
    available: float
    granted_per_s: float


class RatePool:
    """A named GCRA schedule with FIFO waiters; acquired like a slot pool, never released."""

    kind = "rate"
    capacity = None  # no bound on how many run at once
    __slots__ = ("name", "order", "rate", "tat", "held", "granted", "_waiters", "_queued", "_timer", "_loop",
                 "_recent", "_interval", "lanes", "__weakref__")

    def __init__(self, rate: Rate, name: str) -> None:
        if not isinstance(rate, Rate):
            raise ConfigurationError(f"rate pool `{name}` needs a flyte_nb.Rate, got {rate!r}")
        self.name = name
        self.order = _RATE_ORDER + next(_order)
        self.rate = rate
        self.tat = -math.inf
        self.held = 0  # rate pools hold nothing; kept for code that reads ``pool.held``
        self.granted = 0.0  # units granted so far (net of refunds and settlements)
        # (future, cost) in FIFO order; cancelled ones are dropped when they reach the head
        self._waiters: deque[tuple[asyncio.Future[None], float]] = deque()
        self._queued = 0  # live waiters
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._recent = Recent(rate.window)  # units granted over the last window
        self._interval = rate.interval  # read on every grant
        self.lanes = Lanes()  # the timelines of the runs that use it

    # ------------------------------------------------------------- schedule
    def _due(self, cost: float) -> float:
        rate = self.rate
        return self.tat - (rate.burst - min(cost, rate.burst)) * rate.interval

    def _grant(self, now: float, cost: float, late: bool) -> None:
        """One grant's step of the schedule: the rule that the property test checks. The two hot
        paths (``try_acquire``, ``_grant_due``) inline it, a function call being a third of their cost."""
        tat, start = self.tat, now - SLACK if late else now
        self.tat = (tat if tat > start else start) + cost * self._interval
        self.granted += cost
        self._recent.add(now, cost)
        if self.lanes.lanes:
            self.lanes.add(cost)

    def _arm(self) -> None:
        """One timer, for the head waiter only, armed at its due time."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiters = self._waiters
        while waiters and waiters[0][0].done():
            waiters.popleft()
        if waiters and self._loop is not None:
            self._timer = self._loop.call_at(self._due(waiters[0][1]), self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._grant_due(_monotonic())

    def _grant_due(self, now: float) -> None:
        """Hand units to every waiter due at ``now``, in order, in this one wake-up, and arm the
        timer for the next head (``_arm`` inlined: a wake-up finds the caches of a sleeping
        thread cold, and every call it makes costs several times its warm price).

        The schedule stays anchored: a wake-up up to ``SLACK`` late moves ``tat`` on by exactly
        ``cost * interval`` from where it was, so the units it owes still start (in this wake-up)
        and the long-run rate stays the configured one; only the part of a lateness beyond
        ``SLACK`` moves the schedule on. ``tat`` is kept in a local: ``set_result`` never runs a
        callback at once, so nothing reads the pool before the loop ends.
        """
        waiters, burst, interval = self._waiters, self.rate.burst, self._interval
        start = now - SLACK
        tat = self.tat
        granted, count = 0.0, 0
        while waiters:
            future, cost = waiters[0]
            if future.done():  # cancelled while queued: it takes nothing
                waiters.popleft()
                continue
            if now < (tat - (burst - cost) * interval if cost < burst else tat):  # ``_due``, inlined
                break
            waiters.popleft()
            tat = (tat if tat > start else start) + cost * interval
            granted += cost
            count += 1
            future.set_result(None)
        if count:  # the bookkeeping of ``_grant``, once for the wake-up's grants
            self.tat = tat
            self._queued -= count
            self.granted += granted
            self._recent.add(now, granted)
            if self.lanes.lanes:
                self.lanes.add(granted)
        if waiters and self._loop is not None:  # the head is live: the loop stopped at it
            cost = waiters[0][1]
            self._timer = self._loop.call_at(tat - (burst - cost) * interval if cost < burst else tat, self._fire)

    # ---------------------------------------------------- slot-pool protocol
    def try_acquire(self, cost: float = 1) -> bool:
        """Take ``cost`` units if they conform now and nobody is queued ahead; never waits."""
        if self._waiters:
            return False
        now = _monotonic()
        tat = self.tat
        if now < tat - (self.rate.burst - cost) * self._interval if cost < self.rate.burst else now < tat:
            return False  # (``_due`` inlined: this is the path of every free start)
        self.tat = (tat if tat > now else now) + cost * self._interval
        self.granted += cost
        self._recent.add(now, cost)
        if self.lanes.lanes:
            self.lanes.add(cost)
        return True

    async def acquire(self, cost: float = 1) -> bool:
        """Wait for ``cost`` units (FIFO). Cancelled while waiting, it consumes nothing."""
        if self.try_acquire(cost):
            return True
        loop = self._loop = asyncio.get_running_loop()
        future = loop.create_future()
        waiters = self._waiters
        waiters.append((future, cost))
        self._queued += 1
        if len(waiters) == 1:
            self._arm()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.refund(cost)  # granted just as we were cancelled: give it back
                raise
            self._queued -= 1
            future.cancel()
            if waiters and waiters[0][0] is future:
                self._arm()  # the next one becomes head
            # else: skipped (and dropped) when it reaches the head
            raise
        return True

    def release(self) -> None:
        """Tokens are spent by starting, not returned by finishing: nothing to do."""

    def undo(self) -> None:
        """The action that got a unit did not start after all (cancelled while taking its other pools)."""
        self.refund(1)

    # ------------------------------------------------------------ adjusting
    def refund(self, cost: float) -> None:
        """Give back ``cost`` units granted earlier (never more allowance than ``burst``)."""
        self.settle(cost, 0)

    def settle(self, charged: float, actual: float) -> None:
        """A grant of ``charged`` units really used ``actual``: refund or charge the difference."""
        delta = actual - charged
        if delta == 0:
            return
        self.tat += delta * self._interval
        self.granted += delta
        self._recent.add(time.monotonic(), delta)
        if self.lanes.lanes:
            self.lanes.add(delta)
        if self._waiters:
            self._arm()  # the head's turn moved

    def set_rate(self, rate: Rate) -> None:
        """A new limit, in force from the next grant: the backlog of units already granted is
        re-priced at the new interval, so the next waiter's turn comes as the new rate says."""
        if not isinstance(rate, Rate):
            raise ConfigurationError(f"set_rate needs a flyte_nb.Rate, got {rate!r}")
        loop = self._loop
        if loop is not None and _running_loop() is not loop:  # from the notebook's thread: do it on the pool's loop
            loop.call_soon_threadsafe(self._set_rate, rate)
        else:
            self._set_rate(rate)

    def _set_rate(self, rate: Rate) -> None:
        now = time.monotonic()
        if self.tat > now:
            self.tat = now + (self.tat - now) * rate.interval / self.rate.interval
        if rate.window != self.rate.window:
            self._recent = Recent(rate.window)
        self.rate = rate
        self._interval = rate.interval
        if self._waiters:
            self._arm()

    # ---------------------------------------------------------------- views
    def available(self) -> float:
        """Units that could be granted back to back right now (negative while in debt)."""
        rate = self.rate
        backlog = max(0.0, self.tat - time.monotonic())
        return rate.burst - backlog / rate.interval

    def statistics(self) -> RateStatistics:
        now = time.monotonic()
        rate = self.rate
        window = rate.window
        in_window = max(0.0, self._recent.total(now))
        limit = rate.limit * window / rate.per
        return RateStatistics(
            self.name, _whole(limit), _whole(in_window), self._queued,
            rate.limit / rate.per, round(self.available(), 3), round(in_window / window, 3))

    def __repr__(self) -> str:
        return f"<RatePool {self.name!r} {self.rate!r} {self.available():.2f} available, {len(self._waiters)} waiting>"


def recorded_limit(pool: Any) -> Any:
    """A pool's limit as the run store records it: a slot pool's capacity, a rate's units per second."""
    rate = getattr(pool, "rate", None)
    if isinstance(rate, Rate):
        per_second = rate.limit / rate.per
        return int(per_second) if float(per_second).is_integer() else float(f"{per_second:.6g}")
    return pool.capacity


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _whole(value: float) -> Any:
    rounded = round(value)
    return int(rounded) if abs(value - rounded) < 1e-9 else round(value, 3)
