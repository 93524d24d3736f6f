"""Events: every state change of a run or action, for listeners to turn into views.

The engine only emits; widgets, the run store and terminal progress subscribe. Listeners are
called on the engine thread and must be quick (coalesce, batch, hand off).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .kernel import kernel
from .listeners import Listener, Listeners

if TYPE_CHECKING:
    from .action import Action, Phase
    from .run_state import RunState


class EventKind(enum.Enum):
    RUN_STARTED = "run_started"
    RUN_FINISHED = "run_finished"
    ACTION = "action"  # an action changed phase
    OUTPUT = "output"  # an action wrote to stdout/stderr


class Event:
    __slots__ = ("kind", "run", "action", "phase", "time", "data")

    def __init__(
        self,
        kind: EventKind,
        run: RunState,
        action: Action | None = None,
        phase: Phase | None = None,
        data: Any = None,
    ) -> None:
        self.kind = kind
        self.run = run
        self.action = action
        self.phase = phase
        self.time = time.time()
        self.data = data

    def __repr__(self) -> str:
        who = self.action.name if self.action is not None else self.run.name
        return f"<Event {self.kind.value} {who} {self.phase or ''}>"


_kernel = kernel()

def subscribe(listener: Listener) -> Callable[[], None]:
    """Listen to every run's events (``Kernel.listeners``); returns a function that stops listening."""
    listeners = _kernel.listeners
    listeners.append(listener)
    return lambda: listener in listeners and listeners.remove(listener)


def deliver(event: Event, run_listeners: Listeners) -> None:
    """Call each listener; a failing listener is dropped with a warning, never breaks the run."""
    for group in (_kernel.listeners, run_listeners):
        for listener in group.snapshot:
            try:
                listener(event)
            except Exception as error:  # noqa: BLE001
                import warnings

                warnings.warn(f"flyte_nb event listener {listener!r} failed and was removed: {error!r}", stacklevel=1)
                if listener in group:
                    group.remove(listener)


def hear(action: Action, phase: Phase, data: Any, run_listeners: Listeners) -> None:
    """Call each ``on_action`` hook that hears ``phase`` (see :mod:`.listeners`); a failing one is dropped
    with a warning, as in :func:`deliver`."""
    for group in (_kernel.listeners, run_listeners):
        if not group.hooked[phase]:
            continue
        for hook in group.hooks:
            try:
                hook(action, phase, data)
            except Exception as error:  # noqa: BLE001
                drop(group, hook, error)


def drop(group: Listeners, hook: Callable[..., Any], error: Exception) -> None:
    """A hook raised: its listener leaves ``group``, with a warning."""
    import warnings

    owner = getattr(hook, "__self__", hook)
    warnings.warn(f"flyte_nb event listener {owner!r} failed and was removed: {error!r}", stacklevel=2)
    if owner in group:
        group.remove(owner)
