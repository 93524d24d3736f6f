"""``flyte.durable``: ``time``, ``now`` and ``sleep`` that a retried action replays instead of redoing.

Each is callable as ``flyte.durable.time()`` and ``await flyte.durable.time.aio()``. The n-th call
in an action is traced (``flyte.trace``) under its position n, so a retry of the action gets the
same n-th time back, and a ``sleep`` that a first attempt began ends when it would have ended
then. Outside a task they are the plain clock.
"""

from __future__ import annotations

import asyncio
import time as _time
from datetime import datetime
from typing import Any, Callable

from .engine.attempt_state import whoami
from .engine.kernel import Recent, kernel
from .traced import trace


class _CallCounts(Recent[tuple[str, str, int], int]):
    """How many durable calls each of the newest attempts made, by (run, action, attempt)."""


def _position(kind: str) -> str:
    """``kind`` and its call number within the running attempt (each attempt counts from 1)."""
    info = whoami()
    if info is None:
        return kind
    calls = kernel().part(_CallCounts)
    key = (info.run, info.action, info.attempt)
    number = calls.get(key, 0) + 1
    calls.pop(key, None)
    calls.get_or_make(key, lambda: number)
    return f"{kind}#{number}"


@trace
def _clock(position: str) -> float:
    return _time.time()


@trace
def _wall(position: str) -> datetime:
    return datetime.now()


class _SyncAndAio:
    """``f(...)`` from any code, ``await f.aio(...)`` from async code, as the SDK's syncified helpers."""

    def __init__(self, sync: Callable[..., Any], aio: Callable[..., Any], doc: str) -> None:
        self._sync, self._aio, self.__doc__ = sync, aio, doc

    def __call__(self, *args: Any) -> Any:
        return self._sync(*args)

    def aio(self, *args: Any) -> Any:
        return self._aio(*args)


async def _async(value: Any) -> Any:
    return value


def _sleep_sync(seconds: float) -> None:
    left = _clock(_position("sleep")) + seconds - _time.time()
    if left > 0:
        _time.sleep(left)


async def _sleep_aio(seconds: float) -> None:
    left = _clock(_position("sleep")) + seconds - _time.time()
    if left > 0:
        await asyncio.sleep(left)


time = _SyncAndAio(lambda: _clock(_position("time")), lambda: _async(_clock(_position("time"))),
                   "``time.time()``, replayed on retry.")
now = _SyncAndAio(lambda: _wall(_position("now")), lambda: _async(_wall(_position("now"))),
                  "``datetime.now()``, replayed on retry.")
sleep = _SyncAndAio(_sleep_sync, _sleep_aio, "Sleep ``seconds`` counted from the first attempt that began it.")

__all__ = ["now", "sleep", "time"]
