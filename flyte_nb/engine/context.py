"""Context variables: which action's body is running, in which group, under which tags.

Context variables follow the code into tasks created by ``asyncio.gather``, into the greenlets
that drive action bodies and into worker threads of sync bodies, so nested calls find their run.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .action import Action

current_action: ContextVar[Action | None] = ContextVar("flyte_nb.action", default=None)
"""The action whose body is executing; ``None`` outside a run."""

current_group: ContextVar[str | None] = ContextVar("flyte_nb.group", default=None)
"""The group (``flyte_nb.group`` block) that new actions join."""

current_tags: ContextVar[tuple[str, ...]] = ContextVar("flyte_nb.tags", default=())
"""Tags added by enclosing ``flyte_nb.tags`` blocks."""

current_channel: ContextVar[ChildChannel | None] = ContextVar("flyte_nb.channel", default=None)
"""Inside a worker (no engine there): where task calls go, so that the kernel makes them actions."""


class ChildChannel(Protocol):
    """The worker side of the child-call channel (``flyte_nb.worker.runner.Runner``)."""

    async def call(self, task: Any, args: tuple, kwargs: dict, group: str | None, tags: tuple[str, ...],
                   index: int | None = None, *, limit: tuple[str, int] | None = None,
                   total: int | None = None, rate: Any = None) -> Any: ...

    def call_sync(self, task: Any, args: tuple, kwargs: dict, group: str | None, tags: tuple[str, ...]) -> Any: ...

    def block(self, coro: Any) -> Any: ...

    async def acquire_limit(self, limit: Any, cost: float = 1) -> tuple[str, int]: ...

    def release_limit(self, ticket: tuple[str, int]) -> None: ...

    def settle_limit(self, ticket: tuple[str, int], limit: Any, charged: float, actual: float) -> None: ...

    def note(self, kind: str, payload: bytes) -> None: ...
