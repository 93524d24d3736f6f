"""``flyte_nb.map``: the same task over many inputs, as one named group.

``map(...)`` is a sync generator and ``map.aio(...)`` an async generator that streams results.
Both pull inputs lazily and keep at most ``concurrency`` actions in flight, and both work inside
an async task (Flyte 2's sync ``map`` deadlocks there).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import itertools
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

from ..engine import controller
from ..engine.context import current_action, current_channel, current_group, current_tags
from ..engine.fanout import Fanout
from ..engine.loop import block_on, engine, plain_task
from ..engine.rates import Rate
from ..engine.slots import SlotPool
from ..errors import ConfigurationError
from .task import TaskTemplate


_worker_maps = itertools.count(1)  # names the kernel-side pool of each map made in this worker


def _total(iterables: tuple[Iterable[Any], ...]) -> int | None:
    try:
        return min(len(it) for it in iterables)  # type: ignore[arg-type]
    except TypeError:
        return None


class _Plan:
    """A validated map call, ready to stream inside or outside a run."""

    def __init__(self, func: TaskTemplate, iterables: tuple[Iterable[Any], ...], group_name: str | None,
                 concurrency: int, return_exceptions: bool, ordered: bool, rate: Rate | None = None) -> None:
        self.bound: tuple[tuple, dict] = ((), {})  # a functools.partial's arguments, as Flyte allows
        if isinstance(func, functools.partial) and isinstance(func.func, TaskTemplate):
            func, self.bound = func.func, (func.args, dict(func.keywords))
        if not isinstance(func, TaskTemplate):
            raise ConfigurationError(f"flyte_nb.map needs a task (decorate it with @env.task), got {func!r}")
        if not iterables:
            raise ConfigurationError(f"flyte_nb.map({func.short_name}, ...) needs at least one iterable of inputs")
        for it in iterables:
            if not isinstance(it, Iterable):
                raise ConfigurationError(f"flyte_nb.map inputs must be iterables, got {type(it).__name__}")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 0:
            raise ConfigurationError(f"concurrency must be a whole number >= 0 (0 = unlimited), got {concurrency!r}")
        if group_name is not None and (not isinstance(group_name, str) or not group_name.strip()):
            raise ConfigurationError(f"group_name must be a non-empty string, got {group_name!r}")
        if rate is not None and not isinstance(rate, Rate):
            raise ConfigurationError(f"rate must be a flyte_nb.Rate(limit, per='1s'), got {rate!r}")
        self.rate = rate
        self.task = func
        self.iterables = iterables
        self.group_name = group_name or func.short_name
        self.concurrency = concurrency
        self.return_exceptions = return_exceptions
        self.ordered = ordered
        self.tags = current_tags.get()  # in force where map() was called

    def fan(self) -> Fanout:
        """The fan-out of this map; must be made on the engine loop inside a run."""
        parent = current_action.get()
        inputs = zip(*self.iterables)
        spec = self.task.spec
        pre, kw = self.bound
        channel = current_channel.get()
        if parent is None and channel is not None:  # inside a worker: each call is an action of the kernel
            task, group, tags = self.task, self.group_name, self.tags
            outer = current_group.get()
            if outer:
                group = f"{outer}/{group}"
            # the kernel holds the map's group (its total, for n/N progress) and its limit, so a freed
            # slot starts the next child at once; the worker keeps a few more calls queued there
            # (memory stays O(concurrency))
            limit = (f"{group}@{next(_worker_maps)}", self.concurrency)
            total = _total(self.iterables)
            pool = SlotPool(2 * self.concurrency if self.concurrency else None, f"map:{self.group_name}")
            rate = self.rate
            invoke = lambda i, args: channel.call(task, (*pre, *args), kw, group, tags, i,  # noqa: E731
                                                  limit=limit, total=total, rate=rate)
        elif parent is None:
            pool = SlotPool(self.concurrency or None, f"map:{self.group_name}")
            func = self.task.func
            if spec.is_async:
                invoke = lambda i, args: func(*pre, *args, **kw)  # noqa: E731
            else:
                invoke = lambda i, args: asyncio.to_thread(func, *pre, *args, **kw)  # noqa: E731
        else:
            run = parent.run
            group = run.group(self.group_name, _total(self.iterables), unique=True, parent=parent)
            pool = group.pool = SlotPool(self.concurrency or None, f"map:{group.name}")
            run.pools[pool.name] = pool
            if self.rate is not None:
                group.rate = self.rate.pool(f"rate:map.{group.name}")
                run.use_pool(group.rate)
            tags = self.tags

            def invoke(i: int, args: tuple) -> Any:
                return controller.call(spec, (*pre, *args), kw, parent, group, tags, i)

            return Fanout(invoke, inputs, pool, ordered=self.ordered, return_exceptions=self.return_exceptions,
                          spawn=plain_task)  # an action's body is driven by its backend
        return Fanout(invoke, inputs, pool, ordered=self.ordered, return_exceptions=self.return_exceptions)

    def stream(self) -> AsyncIterator[Any]:
        """The results one at a time, as an async generator (``map.aio`` on the engine loop)."""
        return self.fan().__aiter__()


def _sync_results(plan: _Plan) -> Iterator[Any]:
    """``map(...)`` from sync code: results cross from the engine loop a batch at a time.

    From a sync body's worker thread each batch is one blocking round trip; from sync code inside
    an async body (on the engine thread) one greenlet switch (see ``engine.bridge``). Either way
    the per-item cost is the engine's own, not a thread hand-off per item.
    """
    parent = current_action.get()
    channel = current_channel.get()
    if parent is None and channel is not None:  # inside a worker: batches from the worker's loop
        fan = plan.fan()
        try:
            while (batch := channel.block(fan.batch())) is not None:
                yield from batch
        finally:
            if not fan.closed:  # left early: cancel what is in flight there
                channel.block(_close(fan))
        return
    if parent is None and not plan.task.is_async:
        yield from _plain_sync(plan)
        return
    loop = engine()
    track = parent.run.track if parent is not None else None
    fan, batch = block_on(_first(plan), on_task=track)
    try:
        while batch is not None:
            yield from batch
            batch = block_on(fan.batch(), on_task=track)
    finally:
        if not fan.closed:  # left early: cancel what is in flight (before any later call of this body)
            if loop.on_thread():
                fan.close()
            else:
                loop.call_soon(fan.close)


async def _close(fan: Fanout) -> None:
    fan.close()


async def _first(plan: _Plan) -> tuple[Fanout, list[Any] | None]:
    fan = plan.fan()
    return fan, await fan.batch()


def _plain_sync(plan: _Plan) -> Iterator[Any]:
    """Outside a run a map of a sync task is a plain loop."""
    pre, kw = plan.bound
    for args in zip(*plan.iterables):
        try:
            yield plan.task.func(*pre, *args, **kw)
        except Exception as error:  # noqa: BLE001 - returned, as the caller asked
            if not plan.return_exceptions:
                raise
            yield error


class _Map:
    """``flyte_nb.map(task, *iterables, group_name=None, concurrency=0, return_exceptions=True)``."""

    def __call__(self, func: TaskTemplate, *iterables: Iterable[Any], group_name: str | None = None,
                 concurrency: int = 0, return_exceptions: bool = True, rate: Rate | None = None) -> Iterator[Any]:
        """Results in input order, as a sync generator; ``rate`` spaces the starts (``Rate(10, per="1s")``)."""
        return _sync_results(_Plan(func, iterables, group_name, concurrency, return_exceptions, ordered=True, rate=rate))

    def aio(self, func: TaskTemplate, *iterables: Iterable[Any], group_name: str | None = None,
            concurrency: int = 0, return_exceptions: bool = True, ordered: bool = True,
            rate: Rate | None = None) -> AsyncIterator[Any]:
        """Results as an async generator; ``ordered=False`` streams them as they complete."""
        plan = _Plan(func, iterables, group_name, concurrency, return_exceptions, ordered, rate)
        if current_action.get() is not None and not engine().on_thread():
            return _relay(plan)
        return plan.stream()

    def __repr__(self) -> str:
        return "flyte_nb.map"


async def _relay(plan: _Plan) -> AsyncIterator[Any]:
    """``map.aio`` iterated on another loop inside a run: stream from the engine loop in batches."""
    parent = current_action.get()
    track = parent.run.track
    loop = engine()
    fan, batch = await asyncio.wrap_future(loop.submit(_first(plan), contextvars.copy_context(), track))
    try:
        while batch is not None:
            for result in batch:
                yield result
            batch = await asyncio.wrap_future(loop.submit(fan.batch(), contextvars.copy_context(), track))
    finally:
        if not fan.closed:
            loop.call_soon(fan.close)


map = _Map()
