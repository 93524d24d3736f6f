"""A child's ValueError, caught the ways Flyte code and plain Python code catch it."""

import asyncio

import flyte
import flyte.errors

env = flyte.TaskEnvironment("errors")


@env.task
async def judge(x: int) -> int:
    if x == 2:
        raise ValueError(f"item {x} is bad")
    return x * 10


@env.task
async def main() -> dict:
    caught = {}
    try:
        await judge(2)
    except ValueError as error:
        caught["ValueError"] = str(error)
    except Exception as error:
        caught["ValueError"] = f"missed: {type(error).__name__}"
    try:
        await judge(2)
    except flyte.errors.RuntimeUserError as error:
        caught["RuntimeUserError"] = error.code
    try:
        await judge(2)
    except Exception:
        caught["Exception"] = True
    gathered = await asyncio.gather(judge(1), judge(2), return_exceptions=True)
    caught["gather"] = [r if isinstance(r, int) else getattr(r, "code", type(r).__name__) for r in gathered]
    return caught
