"""``flyte_nb.map``: the same task over many inputs, as one named group.

``map(...)`` is a sync generator and ``map.aio(...)`` an async generator that streams results.
Both pull inputs lazily and keep at most ``concurrency`` actions in flight, and both work inside
an async task (Flyte 2's sync ``map`` deadlocks there).
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

from ..engine import controller
from ..engine.context import current_action, current_channel, current_group, current_tags
from ..engine.fanout import fanout
from ..engine.loop import block_on, engine
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
                 concurrency: int, return_exceptions: bool, ordered: bool) -> None:
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
        self.task = func
        self.iterables = iterables
        self.group_name = group_name or func.short_name
        self.concurrency = concurrency
        self.return_exceptions = return_exceptions
        self.ordered = ordered
        self.tags = current_tags.get()  # in force where map() was called

    def stream(self) -> AsyncIterator[Any]:
        """The async stream of results; must be iterated on the engine loop inside a run."""
        parent = current_action.get()
        inputs = zip(*self.iterables)
        spec = self.task.spec
        channel = current_channel.get()
        if parent is None and channel is not None:  # inside a worker: each call is an action of the kernel
            task, group, tags = self.task, self.group_name, self.tags
            outer = current_group.get()
            if outer:
                group = f"{outer}/{group}"
            # the kernel holds the map's limit, so a freed slot starts the next child at once; the
            # worker keeps a few more calls queued there (memory stays O(concurrency))
            limit = (f"{group}@{next(_worker_maps)}", self.concurrency) if self.concurrency else None
            pool = SlotPool(2 * self.concurrency if self.concurrency else None, f"map:{self.group_name}")
            invoke = lambda i, args: channel.call(task, args, {}, group, tags, i, limit=limit)  # noqa: E731
        elif parent is None:
            pool = SlotPool(self.concurrency or None, f"map:{self.group_name}")
            func = self.task.func
            if spec.is_async:
                invoke = lambda i, args: func(*args)  # noqa: E731
            else:
                invoke = lambda i, args: asyncio.to_thread(func, *args)  # noqa: E731
        else:
            run = parent.run
            group = run.group(self.group_name, _total(self.iterables), unique=True)
            pool = group.pool = SlotPool(self.concurrency or None, f"map:{group.name}")
            run.pools[pool.name] = pool
            tags = self.tags

            def invoke(i: int, args: tuple) -> Any:
                return controller.call(spec, args, {}, parent, group, tags, i)

        return fanout(invoke, inputs, pool, ordered=self.ordered, return_exceptions=self.return_exceptions)


def _sync_results(plan: _Plan) -> Iterator[Any]:
    parent = current_action.get()
    channel = current_channel.get()
    if parent is None and channel is not None:  # inside a worker: stream on the worker's loop
        stream = plan.stream()
        try:
            while True:
                try:
                    yield channel.block(_next(stream))
                except StopAsyncIteration:
                    return
        finally:
            channel.block(_close(stream))
        return
    if parent is None and not plan.task.is_async:
        yield from _plain_sync(plan)
        return
    stream = plan.stream() if engine().on_thread() else block_on(_open(plan))
    track = parent.run.track if parent is not None else None
    try:
        while True:
            try:
                yield block_on(_next(stream), on_task=track)
            except StopAsyncIteration:
                return
    finally:
        block_on(_close(stream))


async def _open(plan: _Plan) -> AsyncIterator[Any]:
    return plan.stream()


async def _next(stream: AsyncIterator[Any]) -> Any:
    return await stream.__anext__()


async def _close(stream: AsyncIterator[Any]) -> None:
    await stream.aclose()  # type: ignore[attr-defined]


def _plain_sync(plan: _Plan) -> Iterator[Any]:
    """Outside a run a map of a sync task is a plain loop."""
    for args in zip(*plan.iterables):
        try:
            yield plan.task.func(*args)
        except Exception as error:  # noqa: BLE001 - returned, as the caller asked
            if not plan.return_exceptions:
                raise
            yield error


class _Map:
    """``flyte_nb.map(task, *iterables, group_name=None, concurrency=0, return_exceptions=True)``."""

    def __call__(self, func: TaskTemplate, *iterables: Iterable[Any], group_name: str | None = None,
                 concurrency: int = 0, return_exceptions: bool = True) -> Iterator[Any]:
        """Results in input order, as a sync generator."""
        return _sync_results(_Plan(func, iterables, group_name, concurrency, return_exceptions, ordered=True))

    def aio(self, func: TaskTemplate, *iterables: Iterable[Any], group_name: str | None = None,
            concurrency: int = 0, return_exceptions: bool = True, ordered: bool = True) -> AsyncIterator[Any]:
        """Results as an async generator; ``ordered=False`` streams them as they complete."""
        plan = _Plan(func, iterables, group_name, concurrency, return_exceptions, ordered)
        if current_action.get() is not None and not engine().on_thread():
            return _relay(plan)
        return plan.stream()

    def __repr__(self) -> str:
        return "flyte_nb.map"


async def _relay(plan: _Plan) -> AsyncIterator[Any]:
    """``map.aio`` iterated on another loop inside a run: stream from the engine loop."""
    parent = current_action.get()
    stream = await asyncio.wrap_future(engine().submit(_open(plan), contextvars.copy_context()))
    try:
        while True:
            step = engine().submit(_next(stream), contextvars.copy_context(), parent.run.track)
            try:
                yield await asyncio.wrap_future(step)
            except StopAsyncIteration:
                return
    finally:
        await asyncio.wrap_future(engine().submit(_close(stream)))


map = _Map()
