"""A sync flyte.trace helper called from an async task."""

import flyte

env = flyte.TaskEnvironment("sync-tracing")


@flyte.trace
def multiply(a: int, b: int) -> int:
    return a * b


@env.task
async def main() -> int:
    return multiply(6, 7)
