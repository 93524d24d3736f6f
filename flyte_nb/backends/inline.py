"""The in-process backend: async bodies on the engine loop, sync bodies on worker threads."""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from ..engine.bridge import drive
from ..engine.context import current_action, current_group
from ..engine.threads import call_in_thread
from ..engine.backend import Backend

if TYPE_CHECKING:
    from ..engine.action import Action


def body_context(action: Action) -> contextvars.Context:
    """The context an action's body runs in: it knows its action and starts outside any group."""
    context = contextvars.copy_context()
    context.run(_enter, action)
    return context


def _enter(action: Action) -> None:
    current_action.set(action)
    current_group.set(None)


class InlineBackend(Backend):
    name = "inline"

    def execute(self, action: Action, args: tuple, kwargs: dict) -> Awaitable[Any]:  # type: ignore[override]
        """The body's own awaitable (not a coroutine around it: one frame fewer on every action)."""
        spec = action.spec
        context = body_context(action)
        if spec.is_async:
            return drive(spec.func(*args, **kwargs), context)
        return call_in_thread(context, spec.func, args, kwargs)
