"""TaskEnvironment(env_vars=...) read from os.environ in the task body."""

import os

import flyte

env = flyte.TaskEnvironment("variables", env_vars={"GREETING": "hello", "LEVEL": "debug"})


@env.task
async def main() -> list:
    return [os.environ.get("GREETING"), os.environ.get("LEVEL")]
