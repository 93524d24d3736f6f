"""task.override(retries=..., short_name=...) on a flaky task."""

import flyte

env = flyte.TaskEnvironment("overrides")
ATTEMPTS = []


@env.task
async def flaky(succeed_on: int) -> int:
    ATTEMPTS.append(1)
    if len(ATTEMPTS) < succeed_on:
        raise ConnectionError("try again")
    return len(ATTEMPTS)


@env.task
async def main() -> list:
    retried = await flaky.override(retries=3, short_name="flaky_retried")(3)
    return [retried, len(ATTEMPTS)]
