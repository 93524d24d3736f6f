"""flyte.trace helpers inside a task: async, async generator, and an error that keeps its type."""

import flyte

env = flyte.TaskEnvironment("tracing")


@flyte.trace
async def add(a: int, b: int) -> int:
    return a + b


@flyte.trace
async def count(n: int):
    for i in range(n):
        yield i * i


@flyte.trace
async def refuse(x: int) -> int:
    raise KeyError(f"no {x}")


@env.task
async def main() -> dict:
    out = {"add": await add(2, 3), "count": [i async for i in count(4)]}
    try:
        await refuse(7)
    except KeyError as error:
        out["refused"] = str(error)
    return out
