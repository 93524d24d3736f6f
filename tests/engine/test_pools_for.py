"""engine.limits.pools_for: every pool an action waits on, each with its role, none counted twice."""

from __future__ import annotations

import time

import flyte_nb as flyte
from flyte_nb.engine.limits import pools_for

env = flyte.TaskEnvironment("pf_inline", concurrency=3, rate=flyte.Rate(1000, per="1s", burst=100),
                            throttle={"db": 2})
procs = flyte.TaskEnvironment("pf_proc", backend="process", concurrency=2)
unbounded = flyte.TaskEnvironment("pf_free", backend="process")


@env.task(tags=("db", "api"))
def leaf(i: int) -> int:
    return i


@env.task
def fan(n: int) -> list[int]:
    return list(flyte.map(leaf, range(n), concurrency=2, group_name="fan", rate=flyte.Rate(1000, burst=100)))


@procs.task
def nap(seconds: float) -> tuple[float, float]:
    start = time.time()
    time.sleep(seconds)
    return start, time.time()


@procs.task
def naps(n: int) -> list[tuple[float, float]]:
    return list(flyte.map(nap, [0.3] * n))


@unbounded.task
def free() -> int:
    return 1


def _roles(action) -> list[tuple[str, str]]:
    return [(limit.role, limit.pool.name) for limit in pools_for(action)]


def test_every_pool_of_a_mapped_action_with_its_role():
    run = flyte.with_runcontext(throttle={"api": flyte.Rate(1000, burst=100)}).run(fan, 3)
    assert run.outputs(timeout=30) == [0, 1, 2]
    child = run.actions[1]
    roles = _roles(child)
    assert ("map", "map:fan") in roles
    assert ("throttle", "tag:db") in roles
    assert ("environment", "env:pf_inline") in roles
    assert [r for r, _ in roles].count("rate") == 3  # the tag's, the environment's and the map's
    assert {r for r, _ in roles} == {"map", "throttle", "environment", "rate"}  # inline adds no backend pool
    held = {p.name for p in child.pools}
    assert held == {name for role, name in roles if role != "map"}, "the map's slot is the map's, not the action's"
    assert len(roles) == len({name for _, name in roles}), "no pool twice"


def test_a_process_environment_with_concurrency_shows_one_pool_and_still_holds_its_limit():
    run = flyte.run(naps, 6)
    spans = run.outputs(timeout=120)
    child = run.actions[1]
    assert _roles(child) == [("environment", "env:pf_proc")], "not env: and workers: both"
    assert [s.name for s in run.statistics()].count("env:pf_proc") == 1
    assert not [s.name for s in run.statistics() if s.name.startswith("workers:")]
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    level = top = 0
    for _, step in edges:
        level += step
        top = max(top, level)
    assert top == 2, f"concurrency=2 bounds the workers: {top} ran at once"


def test_a_process_environment_without_concurrency_waits_on_its_workers():
    run = flyte.run(free)
    assert run.outputs(timeout=60) == 1
    assert _roles(run.actions[0]) == [("backend", "workers:pf_free")]
