"""Who an attempt is and what it keeps, wherever its body runs (kernel, process, container, Dask).

``flyte.ctx()``, ``flyte.report``, ``flyte.trace`` and checkpoints ask :func:`whoami`. In the kernel
the answer comes from the running action. A worker has no actions, so the kernel sends an
:class:`AttemptInfo` with each ``Run`` (built by :func:`info_for`) and the worker runner sets it.

What a worker body keeps for its run (report changes, traced results, checkpoint saves) goes back
to the kernel as ``Note`` messages of a *kind*; the kernel hands each to the handler registered for
that kind. The API modules register handlers and the per-attempt state they need in the worker
(``provide``), so the engine and the backends never import them; nothing costs anything for an
action whose body uses none of it, except the small ``AttemptInfo`` itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, NamedTuple

from .context import current_action, current_channel
from .kernel import kernel

if TYPE_CHECKING:
    from .action import Action

current_custom_context: ContextVar[Mapping[str, str]] = ContextVar("flyte_nb.custom_context", default={})
"""Context metadata (``flyte.custom_context``) in force; actions started here inherit it."""

class AttemptInfo(NamedTuple):
    """One attempt of one action, as its body sees it (picklable: it travels in ``Run``)."""

    run: str
    action: str
    task: str
    attempt: int  # 1 for the first attempt
    group: str | None = None
    tags: tuple[str, ...] = ()
    custom: tuple[tuple[str, str], ...] = ()
    run_started_at: float = 0.0
    project: str | None = None
    domain: str | None = None
    org: str | None = None
    kept: tuple[tuple[str, bytes], ...] = ()  # per kind: state the kernel keeps for this action (traces…)
    remote: bool = False  # True in a worker: what the body keeps goes back as notes


current_remote: ContextVar[AttemptInfo | None] = ContextVar("flyte_nb.remote_attempt", default=None)
"""Inside a worker: the attempt whose body is running (set by the runner from ``Run.context``)."""

_kernel = kernel()
_providers: dict[str, Callable[[Action], bytes | None]] = {}
_handlers: dict[str, Callable[[Action, bytes], None]] = {}


def register(kind: str, *, receive: Callable[[Action, bytes], None],
             provide: Callable[[Action], bytes | None] | None = None) -> None:
    """Handle notes of ``kind`` from worker bodies in the kernel; ``provide`` adds state to each ``Run``."""
    _handlers[kind] = receive
    if provide is not None:
        _providers[kind] = provide


def info_for(action: Action, remote: bool = False) -> AttemptInfo:
    """The ``AttemptInfo`` of ``action``'s current attempt (kernel side)."""
    kept: tuple[tuple[str, bytes], ...] = ()
    if remote and _providers:
        kept = tuple((kind, data) for kind, provide in _providers.items() if (data := provide(action)) is not None)
    run = action.run
    names = _kernel.project_names
    return AttemptInfo(
        run.name, action.name, action.spec.name, max(action.attempts, 1), action.group_name, action.tags,
        tuple(current_custom_context.get().items()), run.started_at or action.queued_at or time.time(),
        names["project"], names["domain"], names["org"], kept, remote)


def whoami() -> AttemptInfo | None:
    """The attempt whose body is running here (kernel or worker), or None outside a task."""
    action = current_action.get()
    if action is not None:
        return info_for(action)
    return current_remote.get()


def kept(info: AttemptInfo, kind: str) -> bytes | None:
    for name, data in info.kept:
        if name == kind:
            return data
    return None


def send_note(kind: str, payload: bytes) -> bool:
    """Worker side: send a note of ``kind`` about the running attempt to the kernel; False in the kernel."""
    channel = current_channel.get()
    if channel is None or current_remote.get() is None:
        return False
    channel.note(kind, payload)
    return True


def receive_note(action: Action, kind: str, payload: bytes) -> None:
    """Kernel side: a note from ``action``'s body in a worker; unknown kinds are dropped."""
    handler = _handlers.get(kind)
    if handler is not None:
        try:
            handler(action, payload)
        except Exception as error:  # noqa: BLE001 - a bad note never breaks the run
            import warnings

            warnings.warn(f"flyte_nb: a {kind} note of action {action.name} failed: {error!r}", stacklevel=1)
