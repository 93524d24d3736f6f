"""``flyte.notify``: the SDK's notification specs, accepted and checked as the SDK checks them.

A cluster sends them when a run ends; locally nothing is sent (no mail server or webhook is
configured, and a notebook shows the outcome itself), so they are kept on the trigger or run options.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import ConfigurationError
from .models import ActionPhase

__all__ = ["Email", "NamedDelivery", "NamedRule", "Notification", "Slack", "Teams", "Webhook"]

_PHASES = {ActionPhase.FAILED, ActionPhase.SUCCEEDED, ActionPhase.ABORTED, ActionPhase.TIMED_OUT}


def _require(owner: object, field: str, what: str) -> None:
    if not getattr(owner, field):
        raise ConfigurationError(f"{type(owner).__name__} needs {what}")


def _freeze(owner: object, *fields: str) -> None:
    for field in fields:
        value = getattr(owner, field)
        if isinstance(value, list):
            object.__setattr__(owner, field, tuple(value))


@dataclass(frozen=True)
class NamedRule:
    """A notification rule configured on a cluster, by name."""

    name: str

    def __post_init__(self) -> None:
        _require(self, "name", "the rule's name")


@dataclass(frozen=True, kw_only=True)
class Notification:
    """Sent when a run reaches one of ``on_phase`` (succeeded, failed, aborted, timed out)."""

    on_phase: Any

    def __post_init__(self) -> None:
        phases = self.on_phase if isinstance(self.on_phase, (list, tuple)) else (self.on_phase,)
        object.__setattr__(self, "on_phase", tuple(phases))
        if not phases:
            raise ConfigurationError("a notification needs at least one on_phase")
        for phase in phases:
            if phase not in _PHASES:
                raise ConfigurationError(f"a notification cannot be sent on phase {phase!r}: use "
                                         "ActionPhase.SUCCEEDED, FAILED, ABORTED or TIMED_OUT")


@dataclass(frozen=True, kw_only=True)
class NamedDelivery(Notification):
    name: str

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(self, "name", "the delivery config's name")


@dataclass(frozen=True, kw_only=True)
class Email(Notification):
    recipients: tuple[str, ...]
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    subject: str = "Run {{.Run.Name}} {{.Phase}}"
    body: str = ("Run: {{.Run.Name}}\nProject/Domain: {{.Run.Project}}/{{.Run.Domain}}\nPhase: {{.Phase}}\n"
                 "Error: {{.Error}}\n")
    html_body: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _freeze(self, "recipients", "cc", "bcc")
        _require(self, "recipients", "at least one recipient")


@dataclass(frozen=True, kw_only=True)
class Slack(Notification):
    webhook_url: str
    message: str | None = None
    blocks: tuple[dict[str, Any], ...] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(self, "webhook_url", "a webhook_url")
        _freeze(self, "blocks")


@dataclass(frozen=True, kw_only=True)
class Teams(Notification):
    webhook_url: str
    title: str = "Run {{.Run.Name}} {{.Phase}}"
    message: str | None = None
    card: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(self, "webhook_url", "a webhook_url")


@dataclass(frozen=True, kw_only=True)
class Webhook(Notification):
    url: str
    method: str = "POST"
    headers: dict[str, str] | None = None
    body: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(self, "url", "a url")
