"""Run state: the live record of one run, owned and mutated by the engine thread."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextvars
import time
from collections.abc import Mapping
from typing import Any

from .backend import get_backend
from .action import PHASES, Action, Phase
from .events import Event, EventKind, deliver, drop, hear
from .listeners import Listeners
from .kernel import kernel
from .limits import limits
from .names import run_key
from .grant_lanes import GrantLane
from .rates import Rate, RatePool
from .slots import PoolStatistics, SlotPool, in_order
from .spec import ActionCache, ActionRecords, TaskSpec

_kernel = kernel()


class GroupStats:
    """Progress of one group (a ``map`` or a ``flyte_nb.group`` block): counts per phase."""

    __slots__ = ("name", "counts", "total", "pool", "rate", "created_at", "parent")

    def __init__(self, name: str, total: int | None = None, pool: SlotPool | None = None,
                 parent: Action | None = None) -> None:
        self.name = name
        self.parent = parent  # the action whose body made it (the driver's map: the driver), for the tree view
        self.counts = [0] * len(PHASES)
        self.total = total
        self.pool = pool
        self.rate: RatePool | None = None  # a map's rate: each of its actions takes a unit to start
        self.created_at = time.time()

    def count(self, phase: Phase) -> int:
        """How many of the group's actions are in ``phase`` (``group.count(flyte.Phase.FAILED)``)."""
        return self.counts[phase]

    @property
    def finished(self) -> int:
        return sum(self.counts[Phase.SUCCEEDED:])

    def __repr__(self) -> str:
        done = self.finished
        total = "?" if self.total is None else self.total
        return f"<Group {self.name!r} {done}/{total} done>"


def tag_pools(throttle: Mapping[str, Any]) -> tuple[dict[str, SlotPool], dict[str, tuple[RatePool, ...]]]:
    """Per-tag pools of a run: a whole number is a slot limit of the run, a pool (a ``Semaphore``) is
    used as it is, a ``Rate`` is a rate; a list gives one count and any rates."""
    slots: dict[str, SlotPool] = {}
    rates: dict[str, tuple[RatePool, ...]] = {}
    for tag, limits in throttle.items():
        for limit in limits if isinstance(limits, (list, tuple)) else (limits,):
            if isinstance(limit, Rate):
                found = rates.get(tag, ())
                name = f"rate:{tag}" + (f"#{len(found) + 1}" if found else "")
                rates[tag] = (*found, limit.pool(name))
            elif isinstance(limit, SlotPool):  # a semaphore: shared with whoever else holds it
                slots[tag] = limit
            else:
                slots[tag] = SlotPool(limit, f"tag:{tag}")
    return slots, rates


class RunState:
    """Everything the engine knows about one run while it lives."""

    def __init__(
        self,
        name: str,
        driver: TaskSpec,
        args: tuple,
        kwargs: dict,
        throttle: Mapping[str, Any],
    ) -> None:
        self.name = name  # for people: shown, looked up; may change once when the store renames it
        self.key = run_key(name)  # for the machine: folders, containers, cluster keys (see engine.names)
        self.driver = driver
        self.args = args
        self.kwargs = kwargs
        self.phase = "queued"
        self.created_at = time.time()
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.action_count = 0  # actions created so far (their numbers are 0 .. action_count - 1)
        self.kept: dict[int, Action] = {}  # number → action: every one not finished, and the recent finished
        self.window: int | None = None  # finished actions kept (None: all; the store sets a bound)
        self._ended: collections.deque[int] = collections.deque()  # numbers of kept finished actions, oldest first
        self.counts = [0] * len(PHASES)
        self.groups: dict[str, GroupStats] = {}
        self.pools: dict[str, SlotPool] = {}
        self.rate_lanes: dict[str, GrantLane] = {}  # each rate pool's grants while this run is live
        self.throttles, self.rates = tag_pools(throttle)
        for pool in [*self.throttles.values(), *(p for rates in self.rates.values() for p in rates)]:
            self.use_pool(pool)
        self.listeners = Listeners()  # those of this run only (see .listeners for ``phases``)
        self.done: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self.error: BaseException | None = None
        self.tasks: set[asyncio.Task[Any]] = set()  # cancelled together on abort
        self.live: dict[asyncio.Task[Any], int] = {}  # tasks executing actions → how many
        self.active = 0  # actions between start and end
        self.idle: asyncio.Event | None = None
        self.context: contextvars.Context | None = None  # the starting caller's, for views (output routing)
        self.cache: ActionCache | None = None  # set by whoever starts the run (the data layer's cache)
        self.records: ActionRecords | None = None  # likewise: where actions' recorded values are read
        self.aborting = False
        self.abort_reason: str | None = None
        self._pools_for: dict[tuple[int, tuple[str, ...], int], tuple[SlotPool, ...]] = {}
        self.backends: set[str] = set()  # names of the backends its actions use

    # ----------------------------------------------------------------- actions
    def new_action(
        self,
        spec: TaskSpec,
        parent: Action | None,
        group: GroupStats | str | None,
        tags: tuple[str, ...],
    ) -> Action:
        if spec.tags:
            tags = tuple(dict.fromkeys(spec.tags + tags)) if tags else spec.tags
        if isinstance(group, str):
            group = self.group(group)
            if group.parent is None:  # a ``flyte_nb.group`` block: drawn under the first action that used it
                group.parent = parent
        number = self.action_count
        action = Action(number, self, spec, parent, group, tags, self._pools(spec, tags, group))
        self.action_count = number + 1
        self.kept[number] = action
        self.counts[Phase.QUEUED] += 1
        if group is not None:
            group.counts[Phase.QUEUED] += 1
        listeners = self.listeners
        if listeners.hooked[0] or _kernel.listeners.hooked[0]:
            hear(action, Phase.QUEUED, None, listeners)
        if listeners.wants[0] or _kernel.listeners.wants[0]:  # Phase.QUEUED: the run store does not want it
            deliver(Event(EventKind.ACTION, self, action, Phase.QUEUED), listeners)
        return action

    def _pools(self, spec: TaskSpec, tags: tuple[str, ...], group: GroupStats | None) -> tuple[SlotPool, ...]:
        """The pools an action holds or spends (see :mod:`.limits`), once per task, tags and map rate."""
        rate = group.rate if group is not None else None
        key = (id(spec), tags, id(rate))
        pools = self._pools_for.get(key)
        if pools is None:
            self.backends.add(get_backend(spec.backend).name)
            found = [limit.pool for limit in limits(self, spec, tags, group) if limit.held_by_action]
            for pool in found:
                self.use_pool(pool)
            pools = self._pools_for[key] = in_order(found)
        return pools

    def use_pool(self, pool: Any) -> None:
        """``pool`` is one of this run's (``statistics()`` shows it); a rate pool also feeds this run's
        timeline a lane of its grants (:mod:`.grant_lanes`)."""
        if self.pools.setdefault(pool.name, pool) is pool and pool.name not in self.rate_lanes:
            lanes = getattr(pool, "lanes", None)
            if lanes is not None:
                self.rate_lanes[pool.name] = lanes.follow(pool.name, self)

    def transition(self, action: Action, phase: Phase, data: Any = None) -> None:
        """Move ``action`` to ``phase``; ``data`` rides on the event (inputs when it starts running,
        the output when it succeeds)."""
        old = action.phase
        action.phase = phase
        counts = self.counts
        counts[old] -= 1
        counts[phase] += 1
        group = action.group
        if group is not None:
            group.counts[old] -= 1
            group.counts[phase] += 1
        listeners = self.listeners
        if listeners.hooked[phase]:  # see .listeners: no event for these
            sole = listeners.sole
            if sole is None or _kernel.listeners.hooks:
                hear(action, phase, data, listeners)
            else:  # the usual case, the run store's listener alone: one call (bench_store)
                try:
                    sole(action, phase, data)
                except Exception as error:  # noqa: BLE001
                    drop(listeners, sole, error)
        elif _kernel.listeners.hooked[phase]:
            hear(action, phase, data, listeners)
        if listeners.wants[phase] or _kernel.listeners.wants[phase]:
            deliver(Event(EventKind.ACTION, self, action, phase, data), listeners)
        if phase >= 3 and self.window is not None:  # Phase.terminal, without the property call
            # a finished action stays among the recent ones; beyond the window the oldest leaves
            # memory (the run store has it: ``Run.actions`` reads it back)
            ended = self._ended
            ended.append(action.number)
            if len(ended) > self.window:  # type: ignore[operator]
                self.kept.pop(ended.popleft(), None)

    def emit(self, kind: EventKind, data: Any = None, action: Action | None = None) -> None:
        if _kernel.listeners or self.listeners:
            deliver(Event(kind, self, action, None, data), self.listeners)

    # ------------------------------------------------------------------ groups
    def group(self, name: str, total: int | None = None, unique: bool = False,
              parent: Action | None = None) -> GroupStats:
        """The group called ``name``; with ``unique`` a fresh one (``name#2`` …) for each map, made by ``parent``."""
        group = self.groups.get(name)
        if group is not None and unique:
            n = 2
            while f"{name}#{n}" in self.groups:
                n += 1
            name, group = f"{name}#{n}", None
        if group is None:
            group = self.groups[name] = GroupStats(name, total, parent=parent)
        return group

    def statistics(self) -> list[PoolStatistics]:
        return [pool.statistics() for pool in self.pools.values()]

    @property
    def finished(self) -> bool:
        return self.done.done()

    def track(self, task: asyncio.Task[Any]) -> None:
        """Cancel ``task`` with the run on abort (work started from a sync body's thread)."""
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        if self.aborting:
            task.cancel()
