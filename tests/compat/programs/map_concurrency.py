"""flyte.map with concurrency=3 over six half-second tasks: how many ran at once."""

import asyncio
import time

import flyte

env = flyte.TaskEnvironment("mapping")


@env.task
async def slow(i: int) -> list:
    start = time.time()
    await asyncio.sleep(0.5)
    return [i, start, time.time()]


@env.task
async def main() -> dict:
    spans = [s async for s in flyte.map.aio(slow, range(6), concurrency=3)]
    events = sorted([(s, 1) for _, s, _ in spans] + [(e, -1) for _, _, e in spans], key=lambda p: (p[0], p[1]))
    peak = running = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return {"results": [i for i, _, _ in spans], "peak": peak}
