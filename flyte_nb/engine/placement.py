"""Where and how an environment's actions execute, as one frozen value normalised once.

Backends read a ``Placement`` (image, resources, env vars, concurrency, reuse) instead of reaching
back into API objects, and key their pools by it: re-running an environment's cell with new
settings gives a new placement, hence fresh workers; an unchanged cell keeps the warm ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Reuse:
    """Long-lived workers: ``low``–``high`` replicas of ``concurrency`` workers each."""

    low: int
    high: int
    idle_ttl: float | None
    concurrency: int


@dataclass(frozen=True)
class Placement:
    env_name: str
    backend: str | None = None
    image: Any = "auto"  # an image reference or an ``Image`` (frozen: compared by value)
    cpu: float | None = None
    memory: int | None = None
    gpu: int | str | None = None
    env_vars: tuple[tuple[str, str], ...] = ()
    concurrency: int | None = None
    reuse: Reuse | None = None

    @property
    def variables(self) -> dict[str, str]:
        return dict(self.env_vars)

