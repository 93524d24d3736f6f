"""NonRecoverableError stops retries even when attempts remain."""

import flyte
import flyte.errors

env = flyte.TaskEnvironment("non-recoverable")
ATTEMPTS = []


@env.task(retries=3)
async def gives_up() -> None:
    ATTEMPTS.append(1)
    raise flyte.errors.NonRecoverableError("bad input, retrying will not help")


@env.task
async def main() -> list:
    try:
        await gives_up()
    except flyte.errors.NonRecoverableError as error:
        return [error.code, len(ATTEMPTS)]
    return ["no error", len(ATTEMPTS)]
