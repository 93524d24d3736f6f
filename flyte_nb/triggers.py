"""``flyte.Trigger``, ``Cron``, ``FixedRate``, ``OnArtifact``, ``TriggerTime``: accepted, never scheduled here.

There is no scheduler on one machine; a trigger on a task is kept (``task.triggers``) and
validated like the SDK does. When such a task is run by hand, inputs the call leaves out are
taken from its trigger's ``inputs``, with ``TriggerTime`` bound to the run's start time.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .errors import ConfigurationError


class _TriggerTime:
    """Stands for the time the trigger fired; bind it to a task input in ``Trigger(inputs=...)``."""

    def __repr__(self) -> str:
        return "flyte.TriggerTime"


class _TriggeredArtifact:
    """Stands for the artifact that fired an ``OnArtifact`` trigger."""

    def __repr__(self) -> str:
        return "flyte.TriggeredArtifact"


TriggerTime = _TriggerTime()
TriggeredArtifact = _TriggeredArtifact()


@dataclass(frozen=True)
class Cron:
    """A schedule as a cron expression (five fields, or ``@daily``-style)."""

    expression: str
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        text = self.expression.strip() if isinstance(self.expression, str) else ""
        if not (text.startswith("@") or len(text.split()) == 5):
            raise ConfigurationError(f"Cron needs five fields like '0 * * * *' or '@daily', got {self.expression!r}")


@dataclass(frozen=True)
class FixedRate:
    """A schedule every ``interval_minutes`` minutes (from ``start_time``)."""

    interval_minutes: int
    start_time: datetime | None = None

    def __post_init__(self) -> None:
        if isinstance(self.interval_minutes, bool) or not isinstance(self.interval_minutes, int) or self.interval_minutes < 1:
            raise ConfigurationError(f"FixedRate interval_minutes must be a whole number >= 1, got {self.interval_minutes!r}")


@dataclass(frozen=True)
class TriggeredPartition:
    """Stands for one partition value of the artifact that fired the trigger."""

    key: str


class OnArtifact:
    """Fire when artifact ``name`` (``version``, ``partitions``) is produced."""

    def __init__(self, name: str, version: str | None = None, partitions: Mapping[str, str] | None = None,
                 **partition_kwargs: str) -> None:
        self.name = name
        self.version = version
        self.partitions = {**(partitions or {}), **partition_kwargs}

    def __repr__(self) -> str:
        return f"OnArtifact({self.name!r})"


@dataclass(frozen=True)
class Trigger:
    """A named automation for a task; see the module docstring for what happens locally."""

    name: str
    automation: Cron | FixedRate | OnArtifact | None = None
    description: str = ""
    auto_activate: bool = True
    inputs: Mapping[str, Any] | None = None
    env_vars: Mapping[str, str] | None = None
    interruptible: bool | None = None
    overwrite_cache: bool = False
    queue: str | None = None
    max_action_concurrency: int | None = None
    labels: Mapping[str, str] | None = None
    annotations: Mapping[str, str] | None = None
    notifications: Any = None
    custom_context: Mapping[str, str] | None = field(default=None)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigurationError("a Trigger needs a name")
        inputs = dict(self.inputs or {})
        if any(v is TriggerTime for v in inputs.values()) and not isinstance(self.automation, (Cron, FixedRate)):
            raise ConfigurationError(f"trigger {self.name!r} binds TriggerTime but is not a Cron or FixedRate schedule")
        if any(v is TriggeredArtifact for v in inputs.values()) and not isinstance(self.automation, OnArtifact):
            raise ConfigurationError(f"trigger {self.name!r} binds TriggeredArtifact but is not an OnArtifact trigger")

    @classmethod
    def _every(cls, expression: str, name: str, trigger_time_input_key: str | None, **options: Any) -> Trigger:
        inputs = dict(options.pop("inputs", None) or {})
        if trigger_time_input_key is not None:
            inputs[trigger_time_input_key] = TriggerTime
        return cls(name=name, automation=Cron(expression), inputs=inputs or None, **options)

    @classmethod
    def minutely(cls, trigger_time_input_key: str | None = None, *, name: str = "minutely", **options: Any) -> Trigger:
        return cls._every("* * * * *", name, trigger_time_input_key, **options)

    @classmethod
    def hourly(cls, trigger_time_input_key: str | None = None, *, name: str = "hourly", **options: Any) -> Trigger:
        return cls._every("0 * * * *", name, trigger_time_input_key, **options)

    @classmethod
    def daily(cls, trigger_time_input_key: str | None = None, *, name: str = "daily", **options: Any) -> Trigger:
        return cls._every("0 0 * * *", name, trigger_time_input_key, **options)

    @classmethod
    def weekly(cls, trigger_time_input_key: str | None = None, *, name: str = "weekly", **options: Any) -> Trigger:
        return cls._every("0 0 * * 0", name, trigger_time_input_key, **options)

    @classmethod
    def monthly(cls, trigger_time_input_key: str | None = None, *, name: str = "monthly", **options: Any) -> Trigger:
        return cls._every("0 0 1 * *", name, trigger_time_input_key, **options)


def triggers_from_request(triggers: object) -> tuple[Trigger, ...]:
    if triggers is None:
        return ()
    items = (triggers,) if isinstance(triggers, Trigger) else triggers
    if not isinstance(items, (list, tuple)) or not all(isinstance(t, Trigger) for t in items):
        raise ConfigurationError(f"triggers must be a flyte.Trigger or a tuple of them, got {triggers!r}")
    return tuple(items)


def bind_trigger_inputs(func: Any, triggers: tuple[Trigger, ...], args: tuple, kwargs: dict,
                        now: datetime | None = None) -> dict:
    """``kwargs`` plus the first trigger's inputs that the call leaves out (TriggerTime = ``now``)."""
    if not triggers or not triggers[0].inputs:
        return kwargs
    try:
        bound = inspect.signature(func).bind_partial(*args, **kwargs).arguments
    except (TypeError, ValueError):
        return kwargs
    moment = now or datetime.now(timezone.utc)
    filled = dict(kwargs)
    for name, value in triggers[0].inputs.items():
        if name not in bound:
            filled[name] = moment if value is TriggerTime else value
    return filled
