"""The fan-out behind ``map``: its workers refill the window without the consumer, a failing input
iterator reaches the consumer, and a child body stepped on its caller's carrier still knows its
own action when sync code in it waits (issue 16's restructured per-action path)."""

from __future__ import annotations

import asyncio

import pytest

import flyte_nb as flyte
from flyte_nb.engine.action import Phase

env = flyte.TaskEnvironment("fanout")


@env.task
async def ident(i: int) -> int:
    return i


def test_a_freed_slot_starts_the_next_child_while_the_consumer_is_away():
    """The window (here 64) fills while the consumer sleeps: starts do not wait for it."""
    run = flyte.run(_away, 200)
    seen = run.outputs(timeout=20)
    assert seen[2:] == list(range(1, 200))
    done_while_away = seen[1]
    assert done_while_away >= 30, f"only {done_while_away} children ended while the consumer was away"
    assert run.peak_concurrency(ident) <= 2


@env.task
async def _away(n: int) -> list[int]:
    from flyte_nb.engine.context import current_action

    run = current_action.get().run
    seen: list[int] = []
    async for result in flyte.map.aio(ident, range(n), concurrency=2):
        seen.append(result)
        if len(seen) == 1:
            await asyncio.sleep(0.3)
            seen.append(sum(1 for a in list(run.kept.values()) if a.phase == Phase.SUCCEEDED and a.spec is ident.spec))
    return seen


def _inputs(n: int, fail_at: int):
    for i in range(n):
        if i == fail_at:
            raise ValueError(f"input {i} is bad")
        yield i


@env.task
async def bad_inputs_aio(fail_at: int) -> int:
    return len([r async for r in flyte.map.aio(ident, _inputs(500, fail_at), concurrency=5)])


@env.task
def bad_inputs_sync(fail_at: int) -> int:
    return len(list(flyte.map(ident, _inputs(500, fail_at), concurrency=5)))


@pytest.mark.parametrize("driver", [bad_inputs_aio, bad_inputs_sync])
def test_inputs_that_raise_midway_reach_the_consumer(driver):
    """The error is raised where the map is consumed (a worker took that input), never a hang."""
    run = flyte.run(driver, 300)
    with pytest.raises(ValueError, match="input 300 is bad"):
        run.outputs(timeout=20)
    assert all(s.holders == 0 for s in run.statistics())


@env.task
async def leaf(i: int) -> int:
    return i * 10


@env.task
async def middle(i: int) -> list[int]:
    return list(flyte.map(leaf, range(3)))  # sync map inside an async body: waits through the bridge


@env.task
async def top(n: int) -> list[list[int]]:
    return list(await asyncio.gather(*(middle(i) for i in range(n))))


def test_a_child_stepped_on_its_callers_carrier_keeps_its_own_action_when_it_waits():
    """``middle`` runs on the carrier of the gather task that awaits it; the sync map it makes must
    still be its own (its leaves are its children, not ``top``'s)."""
    run = flyte.run(top, 4)
    assert run.outputs(timeout=20) == [[0, 10, 20]] * 4
    middles = {a.number for a in run.actions if a.spec is middle.spec}
    leaves = [a for a in run.actions if a.spec is leaf.spec]
    assert len(leaves) == 12
    assert all(a.parent is not None and a.parent.number in middles for a in leaves)
