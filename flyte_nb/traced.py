"""``@flyte.trace``: helpers inside tasks whose results a retry of the same action reuses.

A traced function (sync, async, generator or async generator) runs as itself, and its errors
keep their type. Inside an action, each successful call's result is kept for that action: when the
action is retried, a call with the same function and inputs returns the kept result instead of
running again (what Flyte's durable traces give a resumed run). Failed calls run again on retry.
Outside a task a traced function is a plain call.
"""

from __future__ import annotations

import functools
import inspect
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

from .engine.context import current_action

F = TypeVar("F", bound=Callable[..., Any])

_KEPT_ACTIONS = 1024
_kept: OrderedDict[tuple[str, str], dict[tuple, Any]] = OrderedDict()
_UNKEYED = object()


def _key(func: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    """What identifies a call across attempts; calls whose inputs print an address are never reused."""
    text = repr((args, sorted(kwargs.items())))
    if " at 0x" in text:
        return _UNKEYED
    return (func.__module__, func.__qualname__, text)


def _store() -> dict[tuple, Any] | None:
    action = current_action.get()
    if action is None:
        return None
    name = (action.run.name, action.name)
    kept = _kept.get(name)
    if kept is None:
        kept = _kept[name] = {}
        while len(_kept) > _KEPT_ACTIONS:
            _kept.popitem(last=False)
    return kept


def trace(func: F) -> F:
    """Decorate a helper called from tasks; see the module docstring."""
    if inspect.isasyncgenfunction(func):
        @functools.wraps(func)
        async def traced_agen(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            kept, key = _store(), _key(func, args, kwargs)
            if kept is not None and key in kept:
                for item in kept[key]:
                    yield item
                return
            items = []
            async for item in func(*args, **kwargs):
                items.append(item)
                yield item
            if kept is not None and key is not _UNKEYED:
                kept[key] = items
        return traced_agen  # type: ignore[return-value]

    if inspect.isgeneratorfunction(func):
        @functools.wraps(func)
        def traced_gen(*args: Any, **kwargs: Any) -> Iterator[Any]:
            kept, key = _store(), _key(func, args, kwargs)
            if kept is not None and key in kept:
                yield from kept[key]
                return
            items = []
            for item in func(*args, **kwargs):
                items.append(item)
                yield item
            if kept is not None and key is not _UNKEYED:
                kept[key] = items
        return traced_gen  # type: ignore[return-value]

    if inspect.iscoroutinefunction(func):
        @functools.wraps(func)
        async def traced_async(*args: Any, **kwargs: Any) -> Any:
            kept, key = _store(), _key(func, args, kwargs)
            if kept is not None and key in kept:
                return kept[key]
            result = await func(*args, **kwargs)
            if kept is not None and key is not _UNKEYED:
                kept[key] = result
            return result
        return traced_async  # type: ignore[return-value]

    @functools.wraps(func)
    def traced(*args: Any, **kwargs: Any) -> Any:
        kept, key = _store(), _key(func, args, kwargs)
        if kept is not None and key in kept:
            return kept[key]
        result = func(*args, **kwargs)
        if kept is not None and key is not _UNKEYED:
            kept[key] = result
        return result
    return traced  # type: ignore[return-value]
