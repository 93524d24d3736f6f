"""``flyte.models`` names that user programs import: ``ActionPhase`` (used to say when to notify)."""

from __future__ import annotations

import enum

__all__ = ["ActionPhase"]


class ActionPhase(str, enum.Enum):
    """An action's phase, with the SDK's values."""

    QUEUED = "queued"
    WAITING_FOR_RESOURCES = "waiting_for_resources"
    INITIALIZING = "initializing"
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABORTED = "aborted"
    TIMED_OUT = "timed_out"
    RECOVERED = "recovered"

    @property
    def is_terminal(self) -> bool:
        return self in (ActionPhase.SUCCEEDED, ActionPhase.FAILED, ActionPhase.ABORTED, ActionPhase.TIMED_OUT,
                        ActionPhase.RECOVERED)
