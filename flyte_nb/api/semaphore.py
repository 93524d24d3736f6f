"""``flyte_nb.Semaphore``: a drop-in for ``asyncio.Semaphore`` that the UI can see."""

from __future__ import annotations

import itertools
from typing import Any

from ..engine.context import current_action
from ..engine.slots import SlotPool
from ..errors import ConfigurationError

_unnamed = itertools.count(1)


class Semaphore(SlotPool):
    """``async with flyte_nb.Semaphore(3, name="api"):`` — a slot pool shown with the run's limits."""

    __slots__ = ()

    def __init__(self, value: int = 1, *, name: str | None = None) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(f"Semaphore value must be a whole number >= 1, got {value!r}")
        super().__init__(value, f"semaphore:{name or next(_unnamed)}")

    async def acquire(self) -> bool:
        action = current_action.get()
        if action is not None:
            action.run.pools.setdefault(self.name, self)
        return await super().acquire()

    def locked(self) -> bool:
        return self.capacity is not None and self.held >= self.capacity

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: Any) -> None:
        self.release()
