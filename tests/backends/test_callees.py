"""The static reading that tells the docker backend a task's body calls tasks (so spares start with it)."""

from __future__ import annotations

import asyncio

import flyte_nb as flyte
from flyte_nb.backends.docker.callees import callees

env = flyte.TaskEnvironment("callees-env", env_vars={"X": "1"})  # env vars: the spec's func is a wrapper


@env.task
def leaf(i: int) -> int:
    return i


def helper(n: int) -> list:
    return list(flyte.map(leaf, range(n)))


def test_names_in_globals_closures_nested_code_and_helpers_are_found():
    other = flyte.TaskEnvironment("callees-other")

    @other.task
    async def nap(i: int) -> int:
        return i

    @env.task
    async def under_semaphore(n: int) -> list:
        semaphore = asyncio.Semaphore(3)

        async def one(i: int) -> int:
            async with semaphore:
                return await nap.aio(i)

        return await asyncio.gather(*(one(i) for i in range(n)))

    @env.task
    async def through_helper(n: int) -> list:
        return helper(n)

    @env.task
    def plain(n: int) -> int:
        return n + 1

    assert callees(under_semaphore.spec.func) == (nap.spec,)
    assert callees(through_helper.spec.func) == (leaf.spec,)
    assert callees(plain.spec.func) == ()
    assert callees(leaf.spec.func) == ()
