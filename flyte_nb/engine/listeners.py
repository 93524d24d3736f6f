"""The listeners of a run (or of every run): a list that knows which action phases they want.

An event costs the engine an object and a call per listener, three or more times per action.
A listener may declare the action phases it needs (``listener.phases``, a collection of
:class:`~.action.Phase`); one that declares none hears everything. When no listener wants a
phase, its events are not built at all: the run store, which writes an action from its later
phases, does not make every action pay for a ``queued`` event. Events of the run itself
(started, finished, output) go to every listener. A listener may still hear phases it did not
ask for (another listener wanted them): it ignores them.

A listener with an ``on_action(action, phase, data)`` method (and ``phases``) hears its action
phases through that call instead, with no event built for it: an event is an object, a clock read
and a loop over the listeners, twice per action, which the run store measured at ~1 us an action.
One that raises is dropped with a warning (``events.hear``), as a failing listener is. Events are
still built for the others; it ignores action events it is given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

_PHASES = 8  # len(Phase); engine.action imports nothing from here, so the count is spelled out
Listener = Callable[[Any], Any]


class Listeners(list):  # type: ignore[type-arg]
    """A list of listeners; ``wants[phase]`` says whether one of them needs an event for ``phase``,
    ``hooked[phase]`` whether one hears it through ``on_action`` (the ``hooks``), ``snapshot`` is the
    listeners as a tuple (all kept up to date on every change)."""

    __slots__ = ("wants", "hooked", "hooks", "sole", "snapshot")

    def __init__(self, listeners: Iterable[Listener] = ()) -> None:
        super().__init__(listeners)
        self._changed()

    def _changed(self) -> None:
        wants, hooked, hooks = [False] * _PHASES, [False] * _PHASES, []
        for listener in self:
            phases = getattr(listener, "phases", None)
            hook = getattr(listener, "on_action", None) if phases is not None else None
            if hook is not None:
                hooks.append(hook)
            into = hooked if hook is not None else wants
            for phase in range(_PHASES) if phases is None else phases:
                into[phase] = True
        self.wants: tuple[bool, ...] = tuple(wants)
        self.hooked: tuple[bool, ...] = tuple(hooked)
        self.hooks: tuple[Callable[[Any, Any, Any], None], ...] = tuple(hooks)
        self.sole = hooks[0] if len(hooks) == 1 else None  # the one hook, called without a loop
        self.snapshot: tuple[Listener, ...] = tuple(self)

    def append(self, listener: Listener) -> None:
        super().append(listener)
        self._changed()

    def extend(self, listeners: Iterable[Listener]) -> None:
        super().extend(listeners)
        self._changed()

    def insert(self, index: Any, listener: Listener) -> None:
        super().insert(index, listener)
        self._changed()

    def remove(self, listener: Listener) -> None:
        super().remove(listener)
        self._changed()

    def pop(self, index: Any = -1) -> Listener:
        listener = super().pop(index)
        self._changed()
        return listener

    def clear(self) -> None:
        super().clear()
        self._changed()

    def __setitem__(self, index: Any, value: Any) -> None:
        super().__setitem__(index, value)
        self._changed()

    def __delitem__(self, index: Any) -> None:
        super().__delitem__(index)
        self._changed()

    def __iadd__(self, listeners: Iterable[Listener]) -> Listeners:  # type: ignore[override]
        self.extend(listeners)
        return self
