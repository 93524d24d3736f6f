"""What the engine needs to know about a task, normalised once at decoration time.

The API layer turns user-facing policies (``RetryStrategy``, ``Timeout``, ``Resources`` …) into
these plain values so that the hot path reads attributes instead of re-interpreting options.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .action import Action
    from .placement import Placement
    from .rates import RatePool
    from .slots import SlotPool


@dataclass(frozen=True)
class RetryPolicy:
    """``count`` retries after the first attempt; the n-th gap is ``min(cap, base * factor**(n-1))``."""

    count: int = 0
    base: float = 1.0
    factor: float = 2.0
    cap: float = 60.0

    def delay(self, failed_attempt: int) -> float:
        return min(self.cap, self.base * self.factor ** (failed_attempt - 1))


NO_RETRY = RetryPolicy()


MISS: Any = object()
"""What :meth:`ActionCache.lookup` returns when it has nothing."""


class ActionCache(Protocol):
    """Where a run looks up and records action outputs (implemented by the data layer)."""

    every_task: bool
    """Whether calls of tasks without a cache policy (``spec.cache is None``) concern it too; when
    False the engine does not call it for them (two calls per action saved). Absent means True."""

    def lookup(self, action: Action, args: tuple, kwargs: dict) -> Any:
        """The recorded output for this call, or :data:`MISS`."""

    def store(self, action: Action, args: tuple, kwargs: dict, result: Any) -> None:
        """Record a successful output."""


@dataclass(frozen=True, eq=False)
class TaskSpec:
    """A task as the engine sees it."""

    name: str
    func: Callable[..., Any]
    is_async: bool
    env_name: str = "default"
    backend: str = "inline"
    retry: RetryPolicy = NO_RETRY
    timeout: float | None = None
    deadline: float | None = None  # seconds from first queued to done, across attempts
    max_queued: float | None = None  # seconds an attempt may wait for its slots
    tags: tuple[str, ...] = ()
    throttle: Mapping[str, Any] = field(default_factory=dict)
    env_pool: SlotPool | None = None
    env_rate: RatePool | None = None  # the environment's rate: every action of it takes a unit to start
    cache: Any = None  # the task's cache policy (opaque to the engine; read by the run's ActionCache)
    source: str | None = None  # source text when the function came from a notebook cell
    placement: Placement | None = None  # where its environment runs it (image, resources, env vars, reuse)


class ActionRecords(Protocol):
    """Where a live action's recorded values are read (the data layer's run store), so that a live
    action answers ``inputs()`` / ``output()`` / ``attempt_history()`` as a stored one does."""

    def inputs(self, action: Action) -> dict[str, Any]: ...

    def output(self, action: Action) -> Any: ...

    def attempt_history(self, action: Action) -> list[dict[str, Any]]: ...
