"""Slot pools: the one abstraction behind every limit.

Map concurrency, tag throttles, environment concurrency and user semaphores are all named pools
with a capacity, holders and FIFO waiters. A release hands the slot straight to the next waiter
(no polling, no thundering herd), and ``acquire_all`` takes several pools in one global order so
that actions bounded by many limits never deadlock each other.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Callable, Sequence
from typing import NamedTuple

from ..errors import ConfigurationError

_order = itertools.count()


class PoolStatistics(NamedTuple):
    """A snapshot of one pool, as the widget and the run store draw it."""

    name: str
    capacity: int | None
    holders: int
    waiting: int


class SlotPool:
    """A named counting limit with FIFO hand-off; ``capacity=None`` means unlimited."""

    kind = "slot"
    __slots__ = ("name", "capacity", "held", "_waiters", "order", "__weakref__")

    def __init__(self, capacity: int | None, name: str) -> None:
        if capacity is not None and (isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1):
            raise ConfigurationError(f"slot pool `{name}` needs a positive whole capacity, got {capacity!r}")
        self.name = name
        self.capacity = capacity
        self.held = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.order = next(_order)

    def try_acquire(self) -> bool:
        """Take a slot if one is free and nobody is queued ahead; never waits."""
        if self._waiters or (self.capacity is not None and self.held >= self.capacity):
            return False
        self.held += 1
        return True

    async def acquire(self) -> bool:
        """Wait for a slot (FIFO). Cancellation while waiting leaves nothing held."""
        if self.try_acquire():
            return True
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot was handed to us just as we were cancelled
            else:
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    pass
            raise
        return True

    def release(self) -> None:
        """Give a slot back; the first live waiter gets it at once."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # hand-off: ``held`` stays the same
                return
        if self.held <= 0:
            raise RuntimeError(f"slot pool `{self.name}` released more often than acquired")
        self.held -= 1

    def undo(self) -> None:
        """Give back a slot taken for an action that did not start after all."""
        self.release()

    def statistics(self) -> PoolStatistics:
        return PoolStatistics(self.name, self.capacity, self.held, sum(not w.done() for w in self._waiters))

    def __repr__(self) -> str:
        cap = "∞" if self.capacity is None else self.capacity
        return f"<SlotPool {self.name!r} {self.held}/{cap} held, {len(self._waiters)} waiting>"


async def acquire_all(pools: Sequence[SlotPool], on_wait: Callable[[SlotPool], None] | None = None) -> None:
    """Acquire every pool in ``pools`` (already in global order); all or nothing.

    ``on_wait(pool)`` is called each time a pool makes it wait (the action's waiting reason).
    """
    for index, pool in enumerate(pools):
        if pool.try_acquire():
            continue
        if on_wait is not None:
            on_wait(pool)
        try:
            await pool.acquire()
        except BaseException:
            undo_all(pools[:index])
            raise


def try_acquire_all(pools: Sequence[SlotPool]) -> bool:
    """Acquire every pool at once if each has a free slot and no queue; else hold nothing."""
    for index, pool in enumerate(pools):
        if not pool.try_acquire():
            undo_all(pools[:index])
            return False
    return True


def undo_all(pools: Sequence[SlotPool]) -> None:
    """Give back what was just taken for a start that did not happen (rate tokens are refunded)."""
    for pool in reversed(pools):
        pool.undo()


def release_all(pools: Sequence[SlotPool]) -> None:
    for pool in reversed(pools):
        pool.release()


def in_order(pools: Sequence[SlotPool]) -> tuple[SlotPool, ...]:
    """Pools in the global acquisition order, without duplicates."""
    unique = {id(p): p for p in pools}
    return tuple(sorted(unique.values(), key=lambda p: p.order))
