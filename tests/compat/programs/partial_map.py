"""flyte.map over a functools.partial of a task, inside a group."""

import functools

import flyte

env = flyte.TaskEnvironment("partials")


@env.task
async def scale(x: int, factor: int, offset: int = 0) -> int:
    return x * factor + offset


@env.task
async def main() -> list:
    with flyte.group("scaling"):
        return [r async for r in flyte.map.aio(functools.partial(scale, factor=10, offset=1), [1, 2, 3])]
