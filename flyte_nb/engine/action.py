"""Actions: one record per task call made inside a run.

Records are compact (``__slots__``, shared references, no per-action strings) because a map may
create hundreds of thousands of them and memory must stay proportional to concurrency.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..errors import StoreError
from .limits import wait_reason

if TYPE_CHECKING:
    from .run_state import GroupStats, RunState
    from .slots import SlotPool
    from .spec import TaskSpec


class Phase(enum.IntEnum):
    """Where an action is in its lifecycle."""

    QUEUED = 0
    WAITING = 1  # waiting for slots
    RUNNING = 2
    SUCCEEDED = 3
    FAILED = 4
    TIMED_OUT = 5
    CANCELLED = 6
    CACHED = 7  # succeeded earlier: the output came from the cache, nothing executed

    def __str__(self) -> str:
        return self.name.lower()

    @property
    def terminal(self) -> bool:
        return self >= Phase.SUCCEEDED


PHASES = tuple(Phase)


class Attempt:
    """One try of an action that was retried (kept only for actions with several attempts)."""

    __slots__ = ("number", "started_at", "ended_at", "error")

    def __init__(self, number: int, started_at: float, ended_at: float, error: BaseException | None) -> None:
        self.number = number
        self.started_at = started_at
        self.ended_at = ended_at
        self.error = error

    def __repr__(self) -> str:
        return f"<Attempt {self.number} {self.ended_at - self.started_at:.3f}s error={self.error!r}>"


class Action:
    """The record of one task call in a run: what, where, how often, how long, how it ended."""

    __slots__ = (
        "number", "run", "spec", "parent", "group", "tags", "phase", "attempts", "history",
        "queued_at", "started_at", "ended_at", "error", "pools", "held", "lent", "index", "printed",
        "waiting_for", "depth",
    )

    def __init__(
        self,
        number: int,
        run: RunState,
        spec: TaskSpec,
        parent: Action | None,
        group: GroupStats | None,
        tags: tuple[str, ...],
        pools: tuple[SlotPool, ...],
    ) -> None:
        self.number = number
        self.run = run
        self.spec = spec
        self.parent = parent
        self.group = group
        self.tags = tags
        self.pools = pools
        self.phase = Phase.QUEUED
        self.attempts = 0
        self.history: list[Attempt] | None = None
        self.queued_at = time.time()
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.error: BaseException | None = None
        self.held = False  # holds its pools right now
        self.lent = 0  # children it is waiting on; while > 0 it lends its slots out
        self.index: Any = None  # position in its map, if any
        self.printed: Iterable[str] | None = None  # what its body printed: an engine.output.OutputTail
        self.waiting_for: str | None = None  # the pool it last had to wait for (see ``reason``)
        self.depth: int = 0 if parent is None else parent.depth + 1  # callers above it (the driver: 0)

    @property
    def name(self) -> str:
        return f"a{self.number}"

    @property
    def task(self) -> str:
        return self.spec.name

    @property
    def group_name(self) -> str | None:
        return self.group.name if self.group is not None else None

    @property
    def parent_name(self) -> str | None:
        return self.parent.name if self.parent is not None else None

    @property
    def backend(self) -> str:
        return self.spec.backend

    # The reading API of a recorded action (``flyte_nb.StoredAction``): the same calls whether the
    # action comes from ``run.actions`` of a live run or from the run store.
    def inputs(self) -> dict[str, Any]:
        """The action's inputs by parameter name (as recorded)."""
        return self._records().inputs(self)

    def output(self) -> Any:
        """What the action returned (succeeded or cached actions), as recorded."""
        return self._records().output(self)

    def attempt_history(self) -> list[dict[str, Any]]:
        """Every attempt: number, phase, timings, error type and message (as recorded)."""
        return self._records().attempt_history(self)

    def _records(self) -> Any:
        records = self.run.records
        if records is None:
            raise StoreError(f"action {self.name} of run {self.run.name}: its values are read from the run store, "
                             "which is off for this run (FLYTE_NB_STORE)")
        return records

    @property
    def logs(self) -> str:
        """What the body printed (stdout and stderr, the last 256 KiB)."""
        return "".join(self.printed or ())

    @property
    def reason(self) -> str | None:
        """Why a waiting action waits: ``"waiting for rate llm"``, ``"waiting for tag db"`` …"""
        if self.phase != Phase.WAITING or self.waiting_for is None:
            return None
        return wait_reason(self.waiting_for)

    @property
    def slots(self) -> tuple[SlotPool, ...]:
        """Its pools that are held while it runs (rate pools are spent at the start instead)."""
        return tuple(p for p in self.pools if p.kind != "rate")

    @property
    def duration(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.ended_at or time.time()) - self.started_at

    def __repr__(self) -> str:
        return f"<Action {self.name} {self.task} {self.phase} attempts={self.attempts}>"
