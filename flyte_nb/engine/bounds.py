"""How long an attempt may run: ``max_runtime`` per attempt, cut short by what is left of the
task's ``deadline`` (counted from when the action was first queued, across all attempts); and how
long it may wait for its slots (``max_queued_time``, per attempt)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..errors import ActionDeadlineError, ActionQueuedTimeoutError, ActionTimeoutError

if TYPE_CHECKING:
    from .action import Action

_FLOOR = 0.001  # an attempt started past its deadline still gets a moment, then times out


def attempt_budget(action: Action) -> float | None:
    """Seconds the attempt starting now may run, or None for no bound."""
    spec = action.spec
    limit = spec.timeout
    if spec.deadline:
        left = max(spec.deadline - (time.time() - action.queued_at), _FLOOR)
        limit = left if limit is None else min(limit, left)
    return limit


def timeout_error(action: Action, attempt: int) -> ActionTimeoutError:
    """The error of an attempt stopped by its budget: a deadline error when the deadline was the bound."""
    spec = action.spec
    if spec.deadline and (spec.timeout is None or time.time() - action.queued_at >= spec.deadline - _FLOOR):
        return ActionDeadlineError(spec.name, spec.deadline, attempt)
    return ActionTimeoutError(spec.name, spec.timeout or 0.0, attempt)


def queue_budget(action: Action) -> float | None:
    """Seconds the attempt may wait for its slots: ``max_queued_time``, cut short by the deadline."""
    spec = action.spec
    limit = spec.max_queued
    if limit and spec.deadline:
        limit = min(limit, max(spec.deadline - (time.time() - action.queued_at), _FLOOR))
    return limit


def queue_timeout_error(action: Action, attempt: int) -> ActionTimeoutError:
    """The error of an attempt that waited too long for its slots (or past its deadline while waiting)."""
    spec = action.spec
    if spec.deadline and time.time() - action.queued_at >= spec.deadline - _FLOOR:
        return ActionDeadlineError(spec.name, spec.deadline, attempt)
    return ActionQueuedTimeoutError(spec.name, spec.max_queued or 0.0, attempt)
