"""Serving the limits a worker's body uses: the kernel side of ``Acquire``, ``Release`` and ``Settle``.

A ``RateLimiter`` or ``Semaphore`` used inside a body running in a worker (process, container,
Dask) is the kernel's one budget, not a copy per worker: the body asks the kernel, which takes the
units from its own pool in the context of the calling attempt's action (so the pool shows among
the run's), and answers. The limit arrives cloudpickled *by reference*, so it unpickles here as
the kernel's live object (a limiter by name and scope, a semaphore by its kernel token).

Semaphore slots a worker holds are remembered per attempt and given back when the attempt ends
however it ends (a body killed while holding one leaks nothing), or when the worker withdraws an
acquisition whose grant crossed its ``CancelChild`` on the way.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol

from ..data.serialization import loads, ship_error, ship_output
from ..engine.context import current_action
from ..worker.protocol import Acquire, Outcome, Settle

if TYPE_CHECKING:
    from ..engine.action import Action


class KernelLimit(Protocol):
    """What the API's limits offer a worker (``flyte_nb.RateLimiter``, ``flyte_nb.Semaphore``)."""

    async def serve_acquire(self, cost: float) -> bool:
        """Take ``cost`` units here; True when they are held until released (a semaphore slot)."""

    def serve_release(self) -> None: ...

    def serve_settle(self, charged: float, actual: float) -> None: ...


async def acquire_outcome(parent: Action, message: Acquire, held: dict[int, KernelLimit]) -> Outcome:
    """Take what ``message`` asks from the kernel's budget, as ``parent``'s body; shipped like a call's outcome."""
    try:
        limit: KernelLimit = loads(message.limit)
        token = current_action.set(parent)
        try:
            kept = await limit.serve_acquire(message.cost)
        finally:
            current_action.reset(token)
        if kept:
            held[message.call] = limit
        return Outcome(True, ship_output(None, "limit"))
    except asyncio.CancelledError:
        raise
    except BaseException as error:  # noqa: BLE001 - goes back to the waiting body, type kept
        return Outcome(False, ship_error(error))


def release(held: dict[int, KernelLimit], call: int) -> bool:
    """Give back the slot of acquisition ``call``, if it holds one."""
    limit = held.pop(call, None)
    if limit is None:
        return False
    limit.serve_release()
    return True


def release_all(held: dict[int, KernelLimit]) -> None:
    """The attempt ended: every slot it still holds comes back."""
    while held:
        held.popitem()[1].serve_release()


def settle(message: Settle) -> None:
    loads(message.limit).serve_settle(message.charged, message.actual)
