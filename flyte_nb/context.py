"""``flyte.ctx()``, ``flyte.custom_context(...)``, ``get_custom_context()``, ``current_domain/project()``.

A task body asks who it is (action and run names, attempt), what context metadata its callers
passed down (``custom_context``, inherited by every action started inside the block), and where to
keep a checkpoint that its next attempt can resume from. Outside a task ``ctx()`` is a falsy null
context whose fields are all None, as in the SDK.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from .checkpoint import Checkpoint, checkpoint_for
from .engine.attempt_state import current_custom_context, whoami
from .engine.kernel import kernel
from .errors import ConfigurationError


def set_placement(project: str | None = None, domain: str | None = None, org: str | None = None) -> None:
    """Remember ``init(project=, domain=, org=)`` for ``current_project()``/``current_domain()``."""
    for key, value in (("project", project), ("domain", domain), ("org", org)):
        if value is not None:
            kernel().project_names[key] = value


def current_project() -> str:
    """The project given to ``flyte.init(project=...)``, else ``"default"`` (there is no cluster here)."""
    return kernel().project_names["project"] or "default"


def current_domain() -> str:
    """The domain given to ``flyte.init(domain=...)``, else ``"development"``."""
    return kernel().project_names["domain"] or "development"


@dataclass(frozen=True)
class ActionID:
    """Names an action within its run, as ``flyte.models.ActionID`` does."""

    name: str
    run_name: str | None = None
    project: str | None = None
    domain: str | None = None
    org: str | None = None


@dataclass(frozen=True)
class TaskContext:
    """What a task body can know about itself (``flyte.ctx()``)."""

    action: ActionID
    version: str = "local"
    mode: str = "local"
    attempt_number: int = 0  # 0 for the first attempt, as Flyte counts
    custom_context: Mapping[str, str] = field(default_factory=dict)
    group: str | None = None
    tags: tuple[str, ...] = ()
    checkpoint: Checkpoint | None = None
    data: dict[str, Any] = field(default_factory=dict)
    interactive_mode: bool = True
    run_start_time: datetime | None = None  # when the run started (UTC), as the SDK gives it

    def __getitem__(self, key: str) -> Any:
        return self.data.get(key)

    def is_in_cluster(self) -> bool:
        return False

    def replace(self, **changes: Any) -> TaskContext:
        return replace(self, **changes)


class _NullTaskContext:
    """``flyte.ctx()`` outside a task: falsy, and every field reads as None."""

    def __bool__(self) -> bool:
        return False

    def __getattr__(self, name: str) -> None:
        if name.startswith("__"):
            raise AttributeError(name)
        return None

    def __getitem__(self, key: str) -> None:
        return None

    def __repr__(self) -> str:
        return "NULL_TASK_CONTEXT"


NULL_TASK_CONTEXT: Any = _NullTaskContext()


def ctx() -> TaskContext:
    """The running task's context (in the kernel or a worker), or a falsy null context outside a task."""
    info = whoami()
    if info is None:
        return NULL_TASK_CONTEXT
    return TaskContext(
        action=ActionID(info.action, info.run, info.project or "default", info.domain or "development", info.org),
        attempt_number=info.attempt - 1,
        custom_context=dict(current_custom_context.get()),
        group=info.group,
        tags=info.tags,
        checkpoint=checkpoint_for(info),
        run_start_time=datetime.fromtimestamp(info.run_started_at, timezone.utc),
    )


def get_custom_context() -> dict[str, str]:
    """The context metadata passed to this action (empty outside a task, as in the SDK)."""
    if whoami() is None:
        return {}
    return dict(current_custom_context.get())


@contextlib.contextmanager
def custom_context(**context: str) -> Iterator[None]:
    """Actions started in this block (and everything they start) see these keys in ``get_custom_context()``."""
    for key, value in context.items():
        if not isinstance(value, str):
            raise ConfigurationError(f"custom_context values must be strings, got {key}={value!r}")
    token = current_custom_context.set({**current_custom_context.get(), **context})
    try:
        yield
    finally:
        current_custom_context.reset(token)
