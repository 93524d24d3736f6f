"""Which pools an action waits on, and why: the one place that answers it.

An action of task ``spec`` called with ``tags`` inside ``group`` waits on, in this order of roles:

- ``map``: its map's concurrency (held by the map for each item it starts, not by the action);
- ``throttle``: each of its tags' whole-number throttle (``throttle={tag: n}``);
- ``environment``: its environment's ``concurrency``;
- ``backend``: what its backend adds (worker processes, containers, cluster-wide leases);
- ``rate``: its tags' rates, its environment's rate and its map's rate (spent at the start).

No limit is counted twice: a backend pool that *is* the environment's limit (the process backend
sizes its workers by it; the Dask backend leases the same ``env:`` limit cluster-wide) replaces the
environment's kernel pool instead of adding a second one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Union

from .backend import get_backend

if TYPE_CHECKING:
    from .action import Action
    from .rates import RatePool
    from .run_state import GroupStats, RunState
    from .slots import SlotPool
    from .spec import TaskSpec

Role = Literal["map", "throttle", "environment", "backend", "rate"]


@dataclass(frozen=True)
class Limit:
    """One pool an action waits on, with the reason it does."""

    role: Role
    pool: Union[SlotPool, RatePool]

    @property
    def held_by_action(self) -> bool:
        """False for a map's pool: the map takes a slot per item before the action exists."""
        return self.role != "map"

    def __repr__(self) -> str:
        return f"<Limit {self.role} {self.pool.name}>"


def limits(run: RunState, spec: TaskSpec, tags: tuple[str, ...], group: GroupStats | None) -> tuple[Limit, ...]:
    """Every pool an action of ``spec`` with ``tags`` in ``group`` of ``run`` waits on, by role."""
    found: list[Limit] = []
    if group is not None and group.pool is not None and group.pool.capacity is not None:  # unlimited: no wait
        found.append(Limit("map", group.pool))
    found += [Limit("throttle", run.throttles[t]) for t in tags if t in run.throttles]
    environment = Limit("environment", spec.env_pool) if spec.env_pool is not None else None
    backend: list[Limit] = []
    for pool in get_backend(spec.backend).pools(spec):
        if spec.env_pool is not None and (pool is spec.env_pool or pool.name == spec.env_pool.name):
            environment = Limit("environment", pool)  # the backend enforces the environment's limit itself
        else:
            backend.append(Limit("backend", pool))
    if environment is not None:
        found.append(environment)
    found += backend
    found += [Limit("rate", r) for t in tags for r in run.rates.get(t, ())]
    if spec.env_rate is not None:
        found.append(Limit("rate", spec.env_rate))
    if group is not None and group.rate is not None:
        found.append(Limit("rate", group.rate))
    return tuple(found)


def wait_reason(pool: str) -> str:
    """Why an action waits for the pool named ``pool``: ``"waiting for rate llm"``, ``"waiting for tag db"``
    (pool names are ``<kind>:<name>``); the same words in the widget, the store and the Lab."""
    kind, _, name = pool.partition(":")
    return f"waiting for {kind} {name}" if name else f"waiting for {kind}"


def pools_for(action: Action) -> tuple[Limit, ...]:
    """Every pool ``action`` waits on (or waited on), with its role: see the module's docstring."""
    return limits(action.run, action.spec, action.tags, action.group)
