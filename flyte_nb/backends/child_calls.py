"""Serving one ``CallChild``: the kernel side of a task call made inside a worker, for every transport.

The call becomes a child action of the calling attempt's action through ``controller.call`` — the
same path as a call made in the kernel. A call made by a ``flyte_nb.map`` inside the worker
carries the map's key: the kernel makes one group per (attempt, map), as a map made in the kernel
gets, with its total (progress shows n/N), its pool and its rate, so the next child starts the
moment a slot frees, without a round trip to the worker (which keeps a few calls queued here).
The rate is taken by each child after its slots, as in the kernel.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ..data.pickling import loads
from ..data.serialization import ship_error, ship_output
from ..engine import controller
from ..engine.attempt_state import current_custom_context
from ..engine.run_state import GroupStats
from ..engine.slots import SlotPool
from ..worker.protocol import CallChild, Outcome

if TYPE_CHECKING:
    from ..engine.action import Action


async def child_outcome(parent: Action, message: CallChild, known: dict[str, Any],
                        maps: dict[str, GroupStats]) -> Outcome:
    """Run the called task as a child action of ``parent``; its value or error, shipped.

    ``known`` keeps the tasks the worker sent by value (by token); ``maps`` the groups of the
    attempt's maps (by map key).
    """
    pool = None
    try:
        if message.task is not None:
            task = loads(message.task)  # a kernel task unpickles as the kernel's live object
            if message.token is not None:
                known[message.token] = task
        else:
            task = known[message.token]
        args, kwargs = loads(message.inputs)
        group: GroupStats | str | None = message.group
        if message.limit is not None:
            group = _map_group(parent, message, maps)
            await group.pool.acquire()
            pool = group.pool
        if message.custom:
            current_custom_context.set(dict(message.custom))  # this task's own context: seen by the child
        value = await controller.call(task.spec, args, kwargs, parent, group, tuple(message.tags), message.index)
        return Outcome(True, ship_output(value, task.name))
    except asyncio.CancelledError:
        raise
    except BaseException as error:  # noqa: BLE001 - goes back to the calling body, type kept
        return Outcome(False, ship_error(error))
    finally:
        if pool is not None:
            pool.release()


def _map_group(parent: Action, message: CallChild, maps: dict[str, GroupStats]) -> GroupStats:
    """The group of the worker's map that made this call: made at its first call, as the kernel's map makes it."""
    key, capacity = message.limit
    group = maps.get(key)
    if group is None:
        run = parent.run
        group = maps[key] = run.group(message.group or key, message.total, unique=True, parent=parent)
        group.pool = SlotPool(capacity or None, f"map:{group.name}")
        run.pools[group.pool.name] = group.pool
        if message.rate is not None:  # the map's group holds its rate, as in the kernel
            group.rate = message.rate.pool(f"rate:map.{group.name}")
            run.use_pool(group.rate)
    return group
