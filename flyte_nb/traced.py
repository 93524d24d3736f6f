"""``@flyte.trace``: helpers inside tasks whose results a retry of the same action reuses.

A traced function (sync, async, generator or async generator) runs as itself, and its errors
keep their type. Inside an action, each successful call's result is kept for that action: when the
action is retried, a call with the same function and inputs returns the kept result instead of
running again (what Flyte's durable traces give a resumed run). Failed calls run again on retry.
Outside a task a traced function is a plain call.

In a worker the kept results live in the kernel, as in-kernel ones do: each successful call goes
back as a note, and each attempt starts with what earlier attempts of its action kept, so a retry
that lands on another worker or container still reuses them.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

from .data.pickling import by_value, loads
from .engine.action import Action
from .engine.attempt_state import kept as kept_state, register, send_note, whoami
from .engine.kernel import Recent, kernel

F = TypeVar("F", bound=Callable[..., Any])

_UNKEYED = object()


def _key(func: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    """What identifies a call across attempts; calls whose inputs print an address are never reused."""
    text = repr((args, sorted(kwargs.items())))
    if " at 0x" in text:
        return _UNKEYED
    return (func.__module__, func.__qualname__, text)


class _Kept(dict):
    """The results kept for one action; in a worker, each one kept is also sent to the kernel."""

    remote = False

    def keep(self, key: Any, value: Any) -> None:
        if key is _UNKEYED:
            return
        self[key] = value
        if self.remote:
            try:
                send_note("trace", by_value((key, value)))
            except Exception:  # noqa: BLE001 - an unpicklable result is only not reused on another worker
                pass


class _KeptTraces(Recent[tuple[str, str], _Kept]):
    """This kernel's (or worker's) traced results of the newest actions, by (run, action)."""


def _kept_for(run: str, action: str) -> _Kept:
    return kernel().part(_KeptTraces).get_or_make((run, action), _Kept)


def _store() -> _Kept | None:
    info = whoami()
    if info is None:
        return None
    kept = _kept_for(info.run, info.action)
    if info.remote and not kept.remote:
        kept.remote = True
        shipped = kept_state(info, "trace")
        if shipped is not None:
            kept.update(loads(shipped))
    return kept


def _provide(action: Action) -> bytes | None:
    """Kernel: what earlier attempts of ``action`` kept, for an attempt starting in a worker."""
    kept = kernel().part(_KeptTraces).get((action.run.name, action.name))
    return by_value(dict(kept)) if kept else None


def _receive(action: Action, payload: bytes) -> None:
    key, value = loads(payload)
    _kept_for(action.run.name, action.name)[key] = value


register("trace", receive=_receive, provide=_provide)


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
            if kept is not None:
                kept.keep(key, items)
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
            if kept is not None:
                kept.keep(key, items)
        return traced_gen  # type: ignore[return-value]

    if inspect.iscoroutinefunction(func):
        @functools.wraps(func)
        async def traced_async(*args: Any, **kwargs: Any) -> Any:
            kept, key = _store(), _key(func, args, kwargs)
            if kept is not None and key in kept:
                return kept[key]
            result = await func(*args, **kwargs)
            if kept is not None:
                kept.keep(key, result)
            return result
        return traced_async  # type: ignore[return-value]

    @functools.wraps(func)
    def traced(*args: Any, **kwargs: Any) -> Any:
        kept, key = _store(), _key(func, args, kwargs)
        if kept is not None and key in kept:
            return kept[key]
        result = func(*args, **kwargs)
        if kept is not None:
            kept.keep(key, result)
        return result
    return traced  # type: ignore[return-value]
