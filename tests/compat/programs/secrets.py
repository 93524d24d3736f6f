"""A secret read from os.environ under the name the task asked for."""

import os

import flyte

env = flyte.TaskEnvironment("secrets", secrets=[flyte.Secret("nb-service-token", as_env_var="SERVICE_TOKEN")])


@env.task
async def main() -> list:
    return [os.environ.get("SERVICE_TOKEN")]
