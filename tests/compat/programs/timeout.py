"""A task that overruns its timeout, caught as Flyte's TaskTimeoutError."""

import asyncio

import flyte
import flyte.errors

env = flyte.TaskEnvironment("timeouts")


@env.task(timeout=1)
async def overruns() -> str:
    await asyncio.sleep(4)
    return "finished"


@env.task
async def main() -> str:
    try:
        return await overruns()
    except flyte.errors.TaskTimeoutError:
        return "timed out"
