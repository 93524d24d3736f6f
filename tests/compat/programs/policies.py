"""Resources, Timeout, Cache and RetryStrategy in the forms the SDK documents."""

from datetime import timedelta

import flyte

env = flyte.TaskEnvironment(
    "policies",
    resources=flyte.Resources(cpu="500m", memory=("512Mi", "1Gi"), disk="10Gi", shm="auto"),
    cache="disable",
)
gpu_env = env.clone_with("policies-gpu", resources=flyte.Resources(cpu=(1, 2), memory="2Gi", gpu="A100:1"))


@env.task(
    cache=flyte.Cache(behavior="auto", version_override="v1", ignored_inputs=("verbose",), salt="s"),
    timeout=flyte.Timeout(max_runtime=timedelta(minutes=5), max_queued_time=timedelta(minutes=1)),
    retries=flyte.RetryStrategy(count=2, backoff=flyte.Backoff(base=timedelta(seconds=1), factor=2.0,
                                                              cap=timedelta(seconds=4))),
)
async def square(x: int, verbose: bool = False) -> int:
    return x * x


@gpu_env.task
async def on_gpu(x: int) -> int:
    return x + 1


@env.task
async def main() -> list:
    return [await square(4), await on_gpu(1), await square.override(resources=flyte.Resources(cpu=1))(3)]
