"""Task programs that several tests (kernel, server, browser) run as scripts or notebook cells.

Each returns source text, so that a test reads as "this program, then these checks"; the knobs are
what the tests that share a program differ in.
"""

from __future__ import annotations


def fan_out(env: str, *, concurrency: int, aio: bool, group: str | None = None) -> str:
    """``main(n)``: a map of ``n`` trivial async ``leaf`` calls at ``concurrency``, summed."""
    name = f", group_name=\"{group}\"" if group else ""
    if aio:
        body = f"""    total = 0
    async for value in flyte.map.aio(leaf, range(n), concurrency={concurrency}{name}):
        total += value
    return total"""
    else:
        body = f"    return sum(flyte.map(leaf, range(n), concurrency={concurrency}{name}))"
    return f'''
import asyncio, flyte_nb as flyte
env = flyte.TaskEnvironment("{env}")

@env.task
async def leaf(x: int) -> int:
    await asyncio.sleep(0)
    return x

@env.task
async def main(n: int) -> int:
{body}
'''


def tree(env: str, *, leaf: str = "return i * i") -> str:
    """``main()``: two ``stage`` actions gathered, each mapping ``leaf`` over 3 inputs, all in process
    workers (9 actions: every call made in a worker is an action of the kernel's engine)."""
    return f'''
import asyncio, time
import flyte_nb as flyte

env = flyte.TaskEnvironment("{env}", backend="process", concurrency=2)

@env.task
def leaf(i: int) -> int:
    {leaf}

@env.task
async def stage(k: int) -> int:
    return sum(flyte.map(leaf, range(3), group_name="leaves"))

@env.task
async def main() -> list:
    return await asyncio.gather(stage(0), stage(1))
'''
