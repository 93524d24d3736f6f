"""Machine-scope limits: one budget for every process on this machine, kept in the flyte_nb home.

A small SQLite file (``limits.sqlite``, WAL, every change one ``BEGIN IMMEDIATE`` transaction)
holds, per name, the GCRA state of a rate (its theoretical arrival time in wall-clock seconds)
and the leases of a semaphore. Two notebooks sharing one API key, or one database, so never
exceed the limit together, and no server is needed. A lease records its holder's pid and the
process's start time: a process that died holding a slot (even by ``kill -9``) loses it on the
next acquisition anywhere, and a recycled pid is not mistaken for the old holder.

Waiters poll: each sleeps until the moment its grant can conform (rates) or briefly (slots),
so waiters in different processes are served in the order they wake, not strictly FIFO.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

from ..engine.grant_lanes import Lanes
from ..engine.rates import Rate, RateStatistics
from ..engine.slots import PoolStatistics
from .failures import when_alone
from .home import home_dir
from .processes import process_started

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rates (name TEXT PRIMARY KEY, tat REAL NOT NULL, interval REAL NOT NULL,
                                  burst INTEGER NOT NULL, per REAL NOT NULL);
CREATE TABLE IF NOT EXISTS semaphores (name TEXT PRIMARY KEY, capacity INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS leases (lease TEXT PRIMARY KEY, name TEXT NOT NULL, pid INTEGER NOT NULL,
                                   pid_started TEXT NOT NULL, acquired_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS leases_by_name ON leases (name);
"""
_SLOT_POLL = (0.005, 0.1)  # first and longest pause between tries for a machine-wide slot
_local = threading.local()


def _connect() -> sqlite3.Connection:
    """One connection per thread and home (a test may switch homes)."""
    path = Path(home_dir()) / "limits.sqlite"
    conns: dict[Path, sqlite3.Connection] = getattr(_local, "conns", None) or {}
    _local.conns = conns
    conn = conns.get(path)
    if conn is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 30000")
        # two processes may create the file together: each step may need a moment alone with it
        when_alone(lambda: (conn.execute("PRAGMA journal_mode = WAL"), conn.executescript(_SCHEMA)))
        conns[path] = conn
    return conn


class _Transaction:
    """``with _Transaction() as db:`` — one IMMEDIATE transaction (writers queue on the file lock)."""

    def __enter__(self) -> sqlite3.Connection:
        self.conn = _connect()
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, kind: Any, *rest: Any) -> None:
        self.conn.execute("COMMIT" if kind is None else "ROLLBACK")


_ME = (os.getpid(), process_started(os.getpid()) or "")


def _me() -> tuple[int, str]:
    global _ME
    if _ME[0] != os.getpid():  # forked
        _ME = (os.getpid(), process_started(os.getpid()) or "")
    return _ME


# ------------------------------------------------------------------ rates
class MachineRatePool:
    """A rate shared by every process on the machine (same GCRA as ``RatePool``, state on disk)."""

    kind = "rate"
    capacity = None

    def __init__(self, name: str, rate: Rate) -> None:
        self.name = f"limiter:{name}@machine"
        self.key = name
        self.rate = rate
        self.granted = 0.0  # by this process
        self.waiting = 0
        self._recent: deque[tuple[float, float]] = deque()
        self.lanes = Lanes()  # the timelines of this process's runs that use it
        with _Transaction() as db:
            row = db.execute("SELECT interval, burst FROM rates WHERE name = ?", (name,)).fetchone()
            if row is None:
                db.execute("INSERT INTO rates VALUES (?, ?, ?, ?, ?)", (name, 0.0, rate.interval, rate.burst, rate.per))
            elif (row[0], row[1]) != (rate.interval, rate.burst):
                self._store_rate(db, rate)

    def _store_rate(self, db: sqlite3.Connection, rate: Rate) -> None:
        (tat, interval), now = db.execute("SELECT tat, interval FROM rates WHERE name = ?", (self.key,)).fetchone(), time.time()
        if tat > now:
            tat = now + (tat - now) * rate.interval / interval
        db.execute("UPDATE rates SET tat = ?, interval = ?, burst = ?, per = ? WHERE name = ?",
                   (tat, rate.interval, rate.burst, rate.per, self.key))

    def set_rate(self, rate: Rate) -> None:
        self.rate = rate
        with _Transaction() as db:
            self._store_rate(db, rate)

    def _try(self, cost: float) -> float:
        """Take ``cost`` units if they conform now: 0.0, else the seconds until they could."""
        with _Transaction() as db:
            tat, interval, burst = db.execute("SELECT tat, interval, burst FROM rates WHERE name = ?", (self.key,)).fetchone()
            now = time.time()
            due = tat - (burst - min(cost, burst)) * interval
            if now < due:
                return due - now
            db.execute("UPDATE rates SET tat = ? WHERE name = ?", (max(tat, now) + cost * interval, self.key))
        self.granted += cost
        self._recent.append((now, cost))
        if self.lanes.lanes:
            self.lanes.add(cost)
        return 0.0

    async def acquire(self, cost: float = 1) -> bool:
        """Wait until ``cost`` units conform machine-wide; cancelled, it consumes nothing."""
        self.waiting += 1
        try:
            while True:
                attempt = asyncio.ensure_future(asyncio.to_thread(self._try, cost))
                try:
                    wait = await asyncio.shield(attempt)
                except asyncio.CancelledError:  # the transaction goes on: give back what it took
                    attempt.add_done_callback(lambda f: f.cancelled() or f.exception() or f.result() or self.settle(cost, 0))
                    raise
                if wait == 0.0:
                    return True
                await asyncio.sleep(wait)
        finally:
            self.waiting -= 1

    def settle(self, charged: float, actual: float) -> None:
        delta = actual - charged
        if delta:
            with _Transaction() as db:
                db.execute("UPDATE rates SET tat = tat + ? * interval WHERE name = ?", (delta, self.key))
            self.granted += delta
            self._recent.append((time.time(), delta))
            if self.lanes.lanes:
                self.lanes.add(delta)

    def statistics(self) -> RateStatistics:
        now, rate = time.time(), self.rate
        window = min(rate.per, 60.0)
        while self._recent and self._recent[0][0] < now - window:
            self._recent.popleft()
        used = max(0.0, sum(c for _, c in self._recent))
        tat, interval, burst = _connect().execute(
            "SELECT tat, interval, burst FROM rates WHERE name = ?", (self.key,)).fetchone()
        available = burst - max(0.0, tat - now) / interval
        return RateStatistics(self.name, round(rate.limit * window / rate.per, 3), round(used, 3), self.waiting,
                              rate.limit / rate.per, round(available, 3), round(used / window, 3))

    def __repr__(self) -> str:
        return f"<MachineRatePool {self.key!r} {self.rate!r}>"


# ------------------------------------------------------------- semaphores
def _reap(db: sqlite3.Connection, name: str) -> None:
    """Drop the leases of processes that are gone (or whose pid now belongs to another process)."""
    for lease, pid, started in db.execute("SELECT lease, pid, pid_started FROM leases WHERE name = ?", (name,)).fetchall():
        now_started = process_started(pid)
        if now_started is None or (started and now_started and now_started != started):
            db.execute("DELETE FROM leases WHERE lease = ?", (lease,))


class MachineSlots:
    """Slots shared by every process on the machine: leases in the home, freed when a holder dies."""

    def __init__(self, name: str, capacity: int) -> None:
        self.key = name
        self.capacity = capacity
        self.leases: deque[str] = deque()  # ours, oldest first
        self.waiting = 0
        with _Transaction() as db:
            db.execute("INSERT INTO semaphores VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET capacity = excluded.capacity",
                       (name, capacity))

    def try_acquire(self) -> bool:
        pid, started = _me()
        lease = uuid.uuid4().hex
        with _Transaction() as db:
            _reap(db, self.key)
            (capacity,) = db.execute("SELECT capacity FROM semaphores WHERE name = ?", (self.key,)).fetchone()
            (held,) = db.execute("SELECT count(*) FROM leases WHERE name = ?", (self.key,)).fetchone()
            if held >= capacity:
                return False
            db.execute("INSERT INTO leases VALUES (?, ?, ?, ?, ?)", (lease, self.key, pid, started, time.time()))
        self.leases.append(lease)
        return True

    async def acquire(self) -> bool:
        pause, longest = _SLOT_POLL
        self.waiting += 1
        try:
            while True:
                attempt = asyncio.ensure_future(asyncio.to_thread(self.try_acquire))
                try:
                    if await asyncio.shield(attempt):
                        return True
                except asyncio.CancelledError:
                    attempt.add_done_callback(lambda f: f.cancelled() or f.exception() or not f.result() or self.release())
                    raise
                await asyncio.sleep(pause)
                pause = min(longest, pause * 2)
        finally:
            self.waiting -= 1

    def release(self) -> None:
        if not self.leases:
            raise RuntimeError(f"machine semaphore `{self.key}` released more often than acquired")
        lease = self.leases.popleft()
        with _Transaction() as db:
            db.execute("DELETE FROM leases WHERE lease = ?", (lease,))

    def holders(self) -> int:
        """Live holders on the whole machine."""
        with _Transaction() as db:
            _reap(db, self.key)
            return db.execute("SELECT count(*) FROM leases WHERE name = ?", (self.key,)).fetchone()[0]

    def statistics(self, name: str) -> PoolStatistics:
        return PoolStatistics(name, self.capacity, self.holders(), self.waiting)
