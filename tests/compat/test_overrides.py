"""``task.override``, ``clone_with``, ``Resources``/``Timeout``/``Cache`` in the SDK's forms, ``map`` over a
``functools.partial``, and ``env_vars`` in ``os.environ`` of the task body on the inline and process backends."""

from __future__ import annotations

import asyncio
import functools
import os
import time
from datetime import timedelta

import pytest

import flyte_nb as flyte
from flyte_nb import Phase

env = flyte.TaskEnvironment("ovr", env_vars={"OVR_A": "from-env"}, concurrency=4)
workers = flyte.TaskEnvironment("ovr-workers", backend="process", concurrency=2, env_vars={"OVR_A": "in-worker"})
drivers = flyte.TaskEnvironment("ovr-drivers")
TRIES: list[int] = []


@pytest.fixture(autouse=True, scope="module")
def no_idle_workers_left():
    yield
    from flyte_nb.backends.base import get_backend
    from flyte_nb.engine.loop import engine

    engine().submit(get_backend("process").shutdown()).result(timeout=30)


@env.task
async def variables() -> dict:
    return {k: v for k, v in os.environ.items() if k.startswith("OVR_")}


@env.task
def sync_variables() -> dict:
    return {k: v for k, v in os.environ.items() if k.startswith("OVR_")}


def worker_variables() -> dict:
    return {k: v for k, v in os.environ.items() if k.startswith("OVR_")}


IN_WORKER = workers.task(worker_variables)


@drivers.task
async def reads_variables() -> list:
    extra = variables.override(env_vars={"OVR_B": "from-override"})
    worker_extra = IN_WORKER.override(env_vars={"OVR_B": "worker-override"})
    return [await variables(), await sync_variables.aio(), await extra(), await IN_WORKER.aio(),
            await worker_extra.aio(), {k: v for k, v in os.environ.items() if k.startswith("OVR_")}]


def test_env_vars_are_in_os_environ_of_the_body_on_each_backend_and_overrides_add_to_them():
    assert flyte.run(reads_variables).outputs(timeout=60) == [
        {"OVR_A": "from-env"}, {"OVR_A": "from-env"}, {"OVR_A": "from-env", "OVR_B": "from-override"},
        {"OVR_A": "in-worker"}, {"OVR_A": "in-worker", "OVR_B": "worker-override"}, {}]
    assert "OVR_A" not in os.environ  # put back after the bodies


other = flyte.TaskEnvironment("ovr-other", env_vars={"OVR_A": "other"})


@env.task
async def holds_a() -> str:
    await asyncio.sleep(0.5)
    return os.environ["OVR_A"]


@other.task
async def wants_other_a() -> str:
    return os.environ["OVR_A"]


@drivers.task
async def clashes() -> list:
    return await asyncio.gather(holds_a(), wants_other_a(), return_exceptions=True)


def test_two_running_inline_bodies_wanting_different_values_is_a_clear_error():
    held, clash = flyte.run(clashes).outputs(timeout=30)
    assert held == "from-env"
    assert isinstance(clash, flyte.ConfigurationError) and "OVR_A" in str(clash) and "backend='process'" in str(clash)


@env.task
async def flaky() -> int:
    TRIES.append(1)
    if len(TRIES) < 3:
        raise ConnectionError("again")
    return len(TRIES)


@env.task
async def slow() -> str:
    await asyncio.sleep(5)
    return "late"


@env.task
async def double(x: int) -> int:
    TRIES.append(x)
    return 2 * x


@drivers.task
async def uses_overrides() -> list:
    TRIES.clear()
    out = [await flaky.override(retries=2)()]
    try:
        await slow.override(timeout=flyte.Timeout(max_runtime=timedelta(milliseconds=200)))()
    except flyte.errors.TaskTimeoutError as error:
        out.append(error.code)
    renamed = double.override(short_name="twice", cache="auto")
    out.append([await renamed(21), await renamed(21)])
    return out


def test_override_retries_timeout_cache_and_short_name():
    run = flyte.run(uses_overrides)
    assert run.outputs(timeout=30) == [3, "MaxRuntimeExceededError", [42, 42]]
    assert {a.task for a in run.actions} >= {"ovr.flaky", "ovr.slow", "ovr.twice"}
    twice = [a for a in run.actions if a.task == "ovr.twice"]
    assert [a.phase for a in twice] == [Phase.SUCCEEDED, Phase.CACHED]
    assert [a for a in run.actions if a.task == "ovr.flaky"][0].attempts == 3


def test_override_of_placement_makes_a_derived_environment():
    small = double.override(resources=flyte.Resources(cpu="500m", memory="256Mi"), env_vars={"OVR_C": "c"},
                            pod_template="ignored", queue="ignored", interruptible=True, service_account="sa")
    assert small.name == double.name and small.environment.name == "ovr"
    assert small.environment.placement_key != env.placement_key and small.environment.pool is env.pool
    assert small.environment.resources.cpu_limit == 0.5
    assert small.environment.env_vars == {"OVR_A": "from-env", "OVR_C": "c"} and env.env_vars == {"OVR_A": "from-env"}
    reusable = flyte.TaskEnvironment("ovr-reuse", reusable=flyte.ReusePolicy(replicas=1))
    task = reusable.task(worker_variables)
    with pytest.raises(flyte.ConfigurationError, match="reusable='off'"):
        task.override(resources=flyte.Resources(cpu=1))
    assert task.override(reusable="off", resources=flyte.Resources(cpu=1)).environment.reusable is None


def test_clone_with_copies_settings_except_those_given():
    clone = env.clone_with("ovr-clone", env_vars={"OVR_D": "d"}, cache="auto", interruptible=True)
    assert (clone.name, clone.env_vars, clone.concurrency) == ("ovr-clone", {"OVR_D": "d"}, 4)
    assert clone.cache is not None and clone.pool is not env.pool and clone.tasks == {}
    again = workers.clone_with("ovr-workers-2", reusable="off", depends_on=[env])
    assert (again.backend, again.depends_on, again.env_vars) == ("process", (env,), {"OVR_A": "in-worker"})


@pytest.mark.parametrize("resources,cpu,memory", [
    (dict(cpu="500m"), 0.5, None), (dict(cpu=2), 2.0, None), (dict(cpu=(1, 2)), 2.0, None),
    (dict(cpu=("250m", "1"), memory=("1Gi", "2Gi")), 1.0, 2 * 2**30), (dict(cpu=0.25, memory="512Mi"), 0.25, 2**29),
    (dict(gpu="A100:2", disk="10Gi", shm="auto", memory="1Gi"), None, 2**30), (dict(gpu=flyte.GPU("H100", 8)), None, None),
    (dict(gpu=1, shm="1Gi"), None, None),
])
def test_resources_in_every_sdk_form(resources, cpu, memory):
    r = flyte.Resources(**resources)
    assert (r.cpu_limit, r.memory_limit) == (cpu, memory)


def test_resources_devices_and_shm():
    assert flyte.Resources(gpu="A100:2").get_device() == flyte.Device(quantity=2, device="A100")
    assert flyte.Resources(gpu=flyte.TPU("V5P", "2x2x1")).get_device().device_class == "TPU"
    assert flyte.Resources(gpu=0).get_device() is None
    assert flyte.Resources(memory="1Gi", shm="auto").shm_bytes == 2**30


@pytest.mark.parametrize("resources,message", [
    (dict(cpu=(1, 2, 3)), r"one value or a \(request, limit\) pair"), (dict(cpu=float("inf")), "positive number of cores"),
    (dict(cpu="lots"), "500m"), (dict(shm=5), "shm must be a size"), (dict(disk="lots"), "disk must be a size"),
    (dict(gpu=[1]), "gpu must be"),
])
def test_bad_resources_say_what_to_write(resources, message):
    with pytest.raises(flyte.ConfigurationError, match=message):
        flyte.Resources(**resources)


def test_timeout_and_cache_accept_every_sdk_field():
    bounds = env.task(timeout=flyte.Timeout(max_runtime="1s", max_queued_time=5, deadline=timedelta(hours=2)))(
        worker_variables).time_bounds
    assert (bounds.max_runtime, bounds.max_queued_time, bounds.deadline) == (1.0, 5.0, 7200.0)
    assert env.task(timeout=flyte.Timeout(deadline=30))(worker_variables).timeout is None
    cache = flyte.Cache(behavior="enabled", version_override=None, serialize=True, ignored_inputs=("x",), salt="s",
                        policies=[flyte.FunctionBodyPolicy()], max_age=timedelta(days=1))
    assert cache.behavior == "auto" and env.task(cache=cache)(worker_variables).cache is cache
    assert flyte.Cache(behavior="off").behavior == "disable"


class Release:
    """A custom cache policy: the version is whatever release we say."""

    def __init__(self, release: str) -> None:
        self.release = release

    def get_version(self, salt: str, params) -> str:
        return self.release + salt


def versioned(release: str) -> flyte.TaskTemplate:
    return env.task(short_name="versioned", cache=flyte.Cache(behavior="auto", policies=[Release(release)]))(
        _versioned_body)


def _versioned_body(x: int) -> int:
    return x + 1


def test_a_custom_cache_policy_versions_the_cache():
    assert isinstance(Release("x"), flyte.CachePolicy)
    first = flyte.run(versioned("r1"), 1)
    first.wait()
    same, bumped = flyte.run(versioned("r1"), 1), flyte.run(versioned("r2"), 1)
    same.wait(), bumped.wait()
    assert [r.actions[0].phase for r in (first, same, bumped)] == [Phase.SUCCEEDED, Phase.CACHED, Phase.SUCCEEDED]


@env.task
async def scaled(x: int, factor: int, offset: int = 0) -> int:
    return x * factor + offset


@drivers.task
async def maps_a_partial() -> list:
    return list(flyte.map(functools.partial(scaled, factor=10, offset=1), [1, 2, 3], concurrency=2))


def test_map_over_a_partial_of_a_task():
    run = flyte.run(maps_a_partial)
    assert run.outputs(timeout=30) == [11, 21, 31]
    assert len([a for a in run.actions if a.task == "ovr.scaled"]) == 3
    assert list(flyte.map(functools.partial(scaled, factor=2), [5])) == [10]  # outside a run too


DEADLINE_TRIES: list[float] = []


@env.task(retries=5, timeout=flyte.Timeout(deadline=1.0))
async def keeps_failing() -> None:
    DEADLINE_TRIES.append(time.monotonic())
    await asyncio.sleep(0.4)
    raise ConnectionError("still down")


@env.task(timeout=flyte.Timeout(max_runtime=30, deadline=0.5))
async def sleeps_past_its_deadline() -> None:
    await asyncio.sleep(30)


def test_a_deadline_bounds_all_attempts_together_and_stops_the_retries():
    DEADLINE_TRIES.clear()
    start = time.monotonic()
    run = flyte.run(keeps_failing)
    with pytest.raises(flyte.errors.DeadlineExceededError) as caught:
        run.outputs(timeout=30)
    elapsed = time.monotonic() - start
    assert caught.value.code == "DeadlineExceededError" and isinstance(caught.value, flyte.errors.TaskTimeoutError)
    assert 2 <= len(DEADLINE_TRIES) <= 3 and run.actions[0].attempts == len(DEADLINE_TRIES)  # 5 retries allowed
    assert run.actions[0].phase == Phase.TIMED_OUT and 0.9 < elapsed < 5
    with pytest.raises(flyte.errors.DeadlineExceededError):
        flyte.run(sleeps_past_its_deadline).outputs(timeout=10)


def test_a_task_wrapped_for_its_env_vars_is_fingerprinted_as_its_function():
    from flyte_nb.data.cache import code_fingerprint

    bound = functools.partial(_versioned_body)
    task = env.task(short_name="bound")(bound)
    assert task.spec.func is not bound and code_fingerprint(task.spec.func) == code_fingerprint(bound)
