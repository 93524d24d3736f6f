"""Serving one ``CallChild``: the kernel side of a task call made inside a worker, for every transport.

The call becomes a child action of the calling attempt's action through ``controller.call`` — the
same path as a call made in the kernel. A call made by a ``flyte_nb.map`` inside the worker
carries the map's limit: the kernel holds a map pool per (attempt, group), so the next child
starts the moment a slot frees, without a round trip to the worker (which keeps a few calls
queued here).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ..data.serialization import loads, ship_error, ship_output
from ..engine import controller
from ..engine.attempt_state import current_custom_context
from ..engine.slots import SlotPool
from ..worker.protocol import CallChild, Outcome

if TYPE_CHECKING:
    from ..engine.action import Action


async def child_outcome(parent: Action, message: CallChild, known: dict[str, Any],
                        limits: dict[str, SlotPool]) -> Outcome:
    """Run the called task as a child action of ``parent``; its value or error, shipped."""
    pool = None
    acquired = False
    try:
        if message.task is not None:
            task = loads(message.task)  # a kernel task unpickles as the kernel's live object
            if message.token is not None:
                known[message.token] = task
        else:
            task = known[message.token]
        args, kwargs = loads(message.inputs)
        if message.limit is not None:
            name, capacity = message.limit
            pool = limits.get(name)
            if pool is None:
                pool = limits[name] = SlotPool(capacity, f"map:{name}")
                parent.run.pools.setdefault(pool.name, pool)
            await pool.acquire()
            acquired = True
        if message.custom:
            current_custom_context.set(dict(message.custom))  # this task's own context: seen by the child
        value = await controller.call(task.spec, args, kwargs, parent, message.group, tuple(message.tags),
                                      message.index)
        return Outcome(True, ship_output(value, task.name))
    except asyncio.CancelledError:
        raise
    except BaseException as error:  # noqa: BLE001 - goes back to the calling body, type kept
        return Outcome(False, ship_error(error))
    finally:
        if acquired:
            pool.release()
