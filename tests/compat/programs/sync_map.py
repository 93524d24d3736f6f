"""The sync flyte.map called from an async task, as the SDK's examples write it."""

import flyte

env = flyte.TaskEnvironment("sync-map")


@env.task
async def double(x: int) -> int:
    return 2 * x


@env.task
async def main() -> list:
    return list(flyte.map(double, [1, 2, 3]))
