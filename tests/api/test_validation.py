"""Bad input to the public API fails fast with a clear ``ConfigurationError``.

Every check here is made at call or decoration time (never on first use, never as a hang), the
error is a ``flyte_nb.ConfigurationError`` (so also a ``ValueError``), and its message names the
offending option and says what is expected. Tests marked ``xfail(strict=True)`` document inputs
where flyte_nb currently does something else (a raw TypeError, no error at all, ...).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import json
import sys
from datetime import timedelta

import pytest

from tests.hangs import bounded

import flyte_nb
from flyte_nb import (
    Backoff,
    ConfigurationError,
    Image,
    Resources,
    RetryStrategy,
    ReusePolicy,
    TaskEnvironment,
    Timeout,
)
from flyte_nb.api.policies import memory_bytes, seconds_from
from flyte_nb.engine import backend as backends_base
from flyte_nb.engine.kernel import kernel
from flyte_nb.data.home import home_dir

Failed = pytest.fail.Exception  # what pytest.raises raises when nothing was raised ("DID NOT RAISE")


# ---------------------------------------------------------------------------------------- fixtures
@pytest.fixture(autouse=True)
def _no_hang():
    """Validation is synchronous and instant: anything slower than a few seconds is a hang."""
    with bounded(20, "validation test"):
        yield


@pytest.fixture(autouse=True)
def _restore_default_backend(monkeypatch):
    """``flyte_nb.init`` changes the kernel's default backend; put it back after each test."""
    monkeypatch.setattr(kernel(), "default_backend", kernel().default_backend)


@pytest.fixture
def env():
    return TaskEnvironment("validation")


@pytest.fixture
def sync_task(env):
    @env.task
    def double(x: int) -> int:
        return 2 * x

    return double


@pytest.fixture
def async_task(env):
    @env.task
    async def triple(x: int) -> int:
        await asyncio.sleep(0)
        return 3 * x

    return triple


@contextlib.contextmanager
def config_error(match: str):
    """``pytest.raises(ConfigurationError, match=...)`` that also checks the error is a clean one.

    A clean error is a ``ValueError`` raised by flyte_nb's own check, not a ``TypeError`` or
    ``AttributeError`` from deep inside that was caught and re-labelled.
    """
    with pytest.raises(ConfigurationError, match=match) as info:
        yield info
    error = info.value
    assert isinstance(error, ValueError)
    inner = error.__cause__ or error.__context__
    assert not isinstance(inner, (TypeError, AttributeError, KeyError)), f"error chained from {inner!r}"
    assert "\n" not in str(error), "the message should be one clear line"


def plain_function(x):
    return x


# ---------------------------------------------------------------------------- TaskEnvironment
@pytest.mark.parametrize("name", ["", "1abc", "has space", "a/b", "x!", 5, None])
def test_environment_bad_name(name):
    with config_error(r"environment name must be a word like 'etl' or 'my-env', got"):
        TaskEnvironment(name)


def test_environment_good_names():
    for name in ("etl", "my-env", "_private", "v1.2", "A_b-c"):
        assert TaskEnvironment(name).name == name


def test_environment_unknown_option():
    with config_error(r"TaskEnvironment got unknown option\(s\): colour, flavour"):
        TaskEnvironment("e", colour="red", flavour="mint")


def test_environment_accepts_flyte_only_options():
    TaskEnvironment("e", pod_template="pt", queue="q", interruptible=True, docs="d", include=["x"], plugin_config={})


@pytest.mark.parametrize("resources", [{"cpu": 1}, "2Gi", 4])
def test_environment_bad_resources_type(resources):
    with config_error(r"resources must be flyte_nb\.Resources\(cpu=\.\.\., memory=\.\.\.\), got"):
        TaskEnvironment("e", resources=resources)


@pytest.mark.parametrize("reusable", [True, "yes", {"replicas": 2}, 3])
def test_environment_bad_reusable_type(reusable):
    with config_error(r"reusable must be flyte_nb\.ReusePolicy\(\.\.\.\), got"):
        TaskEnvironment("e", reusable=reusable)


@pytest.mark.parametrize("option, value", [
    ("env_vars", {"A": 1}),
    ("env_vars", {1: "a"}),
    ("env_vars", {"A": None}),
    ("env", {"B": 2.0}),
])
def test_environment_env_vars_must_map_str_to_str(option, value):
    with config_error(r"env(_vars)? must map str to str"):
        TaskEnvironment("e", **{option: value})


@pytest.mark.parametrize("value", [5, "abc"])
def test_environment_env_vars_not_a_mapping(value):
    with config_error(r"env_vars must map str to str"):
        TaskEnvironment("e", env_vars=value)


@pytest.mark.parametrize("backend", [5, ["inline"], object()])
def test_environment_bad_backend_type(backend):
    with config_error(r"unknown backend .*; choose one of"):
        TaskEnvironment("e", backend=backend)


def test_environment_unknown_backend_name():
    with config_error(r"unknown backend 'nope'; choose one of: .*inline"):
        TaskEnvironment("e", backend="nope")


@pytest.mark.parametrize("image", [5, None, ["python:3.11"]])
def test_environment_bad_image_type(image):
    with config_error(r"image must be an Image or an image reference like"):
        TaskEnvironment("e", image=image)


def test_environment_empty_image_reference():
    with config_error(r"image"):
        TaskEnvironment("e", image="")


def test_environment_bad_cache():
    with config_error(r"cache must be 'auto', 'override', 'disable', True/False or Cache\(\.\.\.\), got 'bogus'"):
        TaskEnvironment("e", cache="bogus")


def test_environment_bad_throttle():
    with config_error(r"throttle for tag 'db' must be a whole number >= 1, got 0"):
        TaskEnvironment("e", throttle={"db": 0})


@pytest.mark.parametrize("concurrency", [0, -1, "3", 1.5, True])
def test_environment_bad_concurrency_is_a_configuration_error(concurrency):
    with config_error(r"concurrency must be a whole number >= 1"):
        TaskEnvironment("e", concurrency=concurrency)


def test_environment_bad_concurrency_message_names_the_option():
    with config_error(r"concurrency"):
        TaskEnvironment("e", concurrency=0)


def test_environment_bad_depends_on():
    with config_error(r"depends_on"):
        TaskEnvironment("e", depends_on=5)


# --------------------------------------------------------------------------------- Resources
@pytest.mark.parametrize("cpu", ["lots", "", 0, -1, "-2", True, [1], float("nan"), float("inf"), "inf", 10**400, 1e300])
def test_resources_bad_cpu(cpu):
    with config_error(r"cpu must be a positive number of cores like 1, 0\.5 or '2', got"):
        Resources(cpu=cpu)


@pytest.mark.parametrize("field, value", [("cpu", (1, 2, 3)), ("cpu", (1,)), ("cpu", ()), ("memory", ("1Gi",)),
                                          ("memory", ("1Gi", "2Gi", "3Gi"))])
def test_resources_tuples_are_request_limit_pairs(field, value):
    """``cpu=(1, 2, 3)`` was accepted (and ``cpu=inf`` too, then an OverflowError at run time)."""
    with config_error(rf"{field} must be one value or a \(request, limit\) pair, got"):
        Resources(**{field: value})


def test_resources_bad_cpu_in_a_range():
    with config_error(r"cpu must be a positive number of cores.*got 'lots'"):
        Resources(cpu=(1, "lots"))


@pytest.mark.parametrize("memory", ["lots", "12XB", "", "Mi", "-1Gi", "1 Gigabyte", -5, 0, 1.5, True, [512]])
def test_resources_bad_memory(memory):
    with config_error(r"memory must look like '512Mi', '2Gi' or '1G' \(or bytes as an int\), got"):
        Resources(memory=memory)


def test_resources_bad_memory_in_a_range():
    with config_error(r"memory must look like '512Mi'.*got '12XB'"):
        Resources(memory=("1Gi", "12XB"))


def test_resources_zero_memory_string():
    with config_error(r"memory"):
        Resources(memory="0Mi")


@pytest.mark.parametrize("timeout", ["1s", "250ms", 0.05, timedelta(milliseconds=50)])
def test_run_wait_takes_durations_like_everywhere_else(timeout):
    """``run.wait(timeout="1s")`` was a raw TypeError from deep inside."""
    run = flyte_nb.run(_slow_for_wait)
    with pytest.raises(TimeoutError, match="still (queued|running)"):  # a loaded machine may not have started it
        run.wait(timeout=timeout)
    run.abort()


def test_a_wait_longer_than_threads_can_wait_is_a_wait_without_limit():
    """Found by the fuzz suite: 9_223_372_037 s was an OverflowError from threading."""
    run = flyte_nb.run(plain_function, 1)
    run.wait(timeout=9_223_372_037)
    assert run.outputs(timeout=10**400 // 10**390) == 1


@pytest.mark.parametrize("make", [lambda: Resources(memory=10**400), lambda: Resources(memory="1e999Gi"),
                                  lambda: flyte_nb.TaskEnvironment("e").task(timeout=10**400)(plain_function)])
def test_huge_numbers_are_refused_not_overflowed(make):
    """Found by the fuzz suite: each was accepted, then an OverflowError at run time."""
    with config_error(r"(memory|timeout) must"):
        make()


@pytest.mark.parametrize("timeout", ["soon", -1, float("inf"), [1], True])
def test_run_wait_refuses_what_is_not_a_duration(timeout):
    run = flyte_nb.run(_slow_for_wait)
    try:
        with config_error(r"timeout must be"):
            run.wait(timeout=timeout)
        with config_error(r"timeout must be"):
            run.outputs(timeout=timeout)
    finally:
        run.abort()


async def _slow_for_wait() -> None:
    await asyncio.sleep(30)


def test_resources_good_values():
    resources = Resources(cpu="2", memory="512Mi")
    assert resources.cpu_limit == 2.0
    assert resources.memory_limit == 512 * 2**20
    ranged = Resources(cpu=(0.5, 2), memory=("256Mi", "1Gi"))
    assert ranged.cpu_limit == 2.0
    assert ranged.memory_limit == 2**30


@pytest.mark.parametrize("text, expected", [
    ("512Mi", 512 * 2**20),
    ("512MiB", 512 * 2**20),
    ("2Gi", 2 * 2**30),
    ("1Ki", 1024),
    ("1Ti", 2**40),
    ("1G", 10**9),
    ("1k", 1000),
    ("1.5Gi", int(1.5 * 2**30)),
    (" 100 ", 100),
    (4096, 4096),
])
def test_memory_bytes(text, expected):
    assert memory_bytes(text) == expected


# ------------------------------------------------------------------------------- ReusePolicy
@pytest.mark.parametrize("replicas", [0, -1, (3, 1), (0, 0), (1, 2, 3), (1,), "2", (1, "2"), 1.5])
def test_reuse_policy_bad_replicas(replicas):
    with config_error(r"replicas must be a count >= 1 or a \(min, max\) pair, got"):
        ReusePolicy(replicas=replicas)


@pytest.mark.parametrize("concurrency", [0, -1, "2", 1.5])
def test_reuse_policy_bad_concurrency(concurrency):
    with config_error(r"ReusePolicy concurrency must be a whole number >= 1, got"):
        ReusePolicy(concurrency=concurrency)


def test_reuse_policy_bad_idle_ttl():
    with config_error(r"idle_ttl must be seconds \(30\), a duration string \('30s', '5m'\) or a timedelta, got 'abc'"):
        ReusePolicy(idle_ttl="abc")


def test_reuse_policy_bad_scaledown_ttl():
    with config_error(r"scaledown_ttl must be seconds"):
        ReusePolicy(scaledown_ttl="abc")


def test_reuse_policy_good_values():
    ReusePolicy(replicas=(0, 3), concurrency=4, idle_ttl="5m")
    ReusePolicy(replicas=2, idle_ttl=timedelta(minutes=1))


# ------------------------------------------------------------------------- env.task options
def test_task_negative_retries(env):
    with config_error(r"retry count must be a whole number >= 0, got -1"):
        env.task(retries=-1)(plain_function)


@pytest.mark.parametrize("retries", ["3", 1.5, True, [3]])
def test_task_bad_retries_type(env, retries):
    with config_error(r"retries must be a whole number or RetryStrategy\(count=\.\.\.\), got"):
        env.task(retries=retries)(plain_function)


@pytest.mark.parametrize("count", [-2, "3", None, 1.5])
def test_task_bad_retry_strategy_count(env, count):
    with config_error(r"retry count must be a whole number >= 0, got"):
        env.task(retries=RetryStrategy(count=count))(plain_function)


@pytest.mark.parametrize("factor", [0.5, 0, -2, "2"])
def test_task_bad_backoff_factor(env, factor):
    with config_error(r"backoff factor must be a number >= 1, got"):
        env.task(retries=RetryStrategy(count=2, backoff=Backoff(factor=factor)))(plain_function)


def test_task_bad_backoff_durations(env):
    with config_error(r"backoff base must be seconds \(30\), a duration string"):
        env.task(retries=RetryStrategy(count=2, backoff=Backoff(base="abc")))(plain_function)
    with config_error(r"backoff cap must be a finite number of seconds >= 0, got -1"):
        env.task(retries=RetryStrategy(count=2, backoff=Backoff(cap=-1)))(plain_function)
    with config_error(r"backoff base must be seconds"):
        env.task(retries=RetryStrategy(count=2, backoff="soon"))(plain_function)


def test_task_good_retries(env):
    task = env.task(retries=RetryStrategy(count=3, backoff=Backoff(base="250ms", factor=2, cap="5s")))(plain_function)
    assert (task.retries.count, task.retries.base, task.retries.factor, task.retries.cap) == (3, 0.25, 2.0, 5.0)
    assert env.task(retries=2)(plain_function).retries.count == 2


@pytest.mark.parametrize("timeout", ["abc", "5 minutes", "-1s", [1], True, Timeout(max_runtime="abc")])
def test_task_bad_timeout(env, timeout):
    with config_error(r"timeout must be seconds \(30\), a duration string \('30s', '5m'\) or a timedelta, got"):
        env.task(timeout=timeout)(plain_function)


@pytest.mark.parametrize("timeout", [-1, -0.5, timedelta(seconds=-1), Timeout(max_runtime=-1)])
def test_task_negative_timeout(env, timeout):
    with config_error(r"timeout must be a finite number of seconds >= 0, got"):
        env.task(timeout=timeout)(plain_function)


def test_task_nan_timeout(env):
    with config_error(r"timeout"):
        env.task(timeout=float("nan"))(plain_function)


def test_task_good_timeouts(env):
    assert env.task(timeout="5m")(plain_function).timeout == 300.0
    assert env.task(timeout=Timeout(max_runtime=timedelta(seconds=30)))(plain_function).timeout == 30.0
    assert env.task(timeout=0)(plain_function).timeout is None  # Flyte: 0 means no timeout


@pytest.mark.parametrize("tags", [[1], 123, [""], ["ok", None], {"db": 1}])
def test_task_tags_not_strings(env, tags):
    with config_error(r"tags must be a list of non-empty strings, got"):
        env.task(tags=tags)(plain_function)


@pytest.mark.parametrize("limit", [0, -1, "2", True, 1.5])
def test_task_throttle_bad_limit(env, limit):
    with config_error(r"throttle for tag 'db' must be a whole number >= 1, got"):
        env.task(throttle={"db": limit})(plain_function)


def test_task_throttle_bad_shape(env):
    with config_error(r"throttle must map tag names to limits, like \{'db': 2\}, got"):
        env.task(throttle=["db"])(plain_function)
    with config_error(r"throttle keys must be tag names, got ''"):
        env.task(throttle={"": 1})(plain_function)
    with config_error(r"throttle keys must be tag names, got 1"):
        env.task(throttle={1: 1})(plain_function)


def test_task_bad_cache(env):
    with config_error(r"cache must be 'auto', 'override', 'disable', True/False or Cache\(\.\.\.\), got 'always'"):
        env.task(cache="always")(plain_function)


def test_task_decorating_a_generator(env):
    def numbers(n):
        yield from range(n)

    async def stream(n):
        yield n

    with config_error(r"task `numbers` is a generator; tasks must return their result"):
        env.task(numbers)
    with config_error(r"task `stream` is a generator; tasks must return their result"):
        env.task(retries=1)(stream)


def test_task_decorating_a_partial_generator(env):
    def numbers(n):
        yield from range(n)

    with config_error(r"is a generator; tasks must return their result"):
        env.task(functools.partial(numbers, 3))


@pytest.mark.parametrize("thing", [42, "name", 3.5, [plain_function]])
def test_task_decorating_a_non_callable(env, thing):
    with config_error(r"@env\.task decorates a function, got"):
        env.task(thing)
    with config_error(r"@env\.task decorates a function, got"):
        env.task(retries=1)(thing)


def test_task_decorating_a_task_twice(env, sync_task):
    with config_error(r"@env\.task decorates a function, got <task validation\.double"):
        env.task(sync_task)


@pytest.mark.parametrize("option", ["retriez", "timeuot"])
def test_task_unknown_option(env, option):
    with config_error(rf"unknown option\(s\): {option}"):
        env.task(**{option: 3})(plain_function)


@pytest.mark.parametrize("option", ["interruptible", "triggers", "pod_template", "queue"])
def test_task_accepts_flyte_only_options(env, option):
    assert env.task(**{option: None})(plain_function)(2) == plain_function(2)


def test_task_override_unknown_option(sync_task):
    with config_error(r"unknown option\(s\): bogus"):
        sync_task.override(bogus=1)


def test_task_override_validates_options(sync_task):
    with config_error(r"retry count must be a whole number >= 0, got -1"):
        sync_task.override(retries=-1)
    assert sync_task.override(retries=2).retries.count == 2


# ----------------------------------------------------------------------------- flyte_nb.map
# None of these iterate the returned generator: validation must happen when map(...) is called.
@pytest.mark.parametrize("func", [plain_function, lambda x: x, None, "double"])
def test_map_needs_a_task(func):
    with config_error(r"flyte_nb\.map needs a task \(decorate it with @env\.task\), got"):
        flyte_nb.map(func, [1, 2])
    with config_error(r"flyte_nb\.map needs a task"):
        flyte_nb.map.aio(func, [1, 2])


def test_map_needs_iterables(sync_task):
    with config_error(r"flyte_nb\.map\(double, \.\.\.\) needs at least one iterable of inputs"):
        flyte_nb.map(sync_task)
    with config_error(r"needs at least one iterable of inputs"):
        flyte_nb.map.aio(sync_task)


@pytest.mark.parametrize("bad", [5, None, 2.5])
def test_map_non_iterable_input(sync_task, bad):
    with config_error(rf"flyte_nb\.map inputs must be iterables, got {type(bad).__name__}"):
        flyte_nb.map(sync_task, [1, 2], bad)
    with config_error(r"flyte_nb\.map inputs must be iterables"):
        flyte_nb.map.aio(sync_task, bad)


@pytest.mark.parametrize("concurrency", [-1, "3", 1.5, True, None])
def test_map_bad_concurrency(sync_task, concurrency):
    with config_error(r"concurrency must be a whole number >= 0 \(0 = unlimited\), got"):
        flyte_nb.map(sync_task, [1, 2], concurrency=concurrency)
    with config_error(r"concurrency must be a whole number >= 0"):
        flyte_nb.map.aio(sync_task, [1, 2], concurrency=concurrency)


@pytest.mark.parametrize("group_name", ["", "   ", 5])
def test_map_bad_group_name(sync_task, group_name):
    with config_error(r"group_name must be a non-empty string, got"):
        flyte_nb.map(sync_task, [1, 2], group_name=group_name)
    with config_error(r"group_name must be a non-empty string"):
        flyte_nb.map.aio(sync_task, [1, 2], group_name=group_name)


def test_map_outside_a_run_is_a_plain_loop(sync_task):
    results = flyte_nb.map(sync_task, [1, 2, 3], concurrency=2, group_name="doubles")
    assert inspect.isgenerator(results)
    assert list(results) == [2, 4, 6]


# -------------------------------------------------------------------- with_runcontext / run
def test_with_runcontext_unknown_option():
    with config_error(r"with_runcontext got unknown option\(s\): colour"):
        flyte_nb.with_runcontext(colour="red")


def test_with_runcontext_accepts_flyte_run_options():
    flyte_nb.with_runcontext(project="p", domain="development", mode="local", labels={"a": "b"})


@pytest.mark.parametrize("throttle, message", [
    ({"db": 0}, r"throttle for tag 'db' must be a whole number >= 1, got 0"),
    ({"db": "2"}, r"throttle for tag 'db' must be a whole number >= 1, got '2'"),
    ("db", r"throttle must map tag names to limits"),
    ({"": 2}, r"throttle keys must be tag names"),
])
def test_with_runcontext_bad_throttle(throttle, message):
    with config_error(message):
        flyte_nb.with_runcontext(throttle=throttle)


@pytest.mark.parametrize("name", ["", "   ", "a/b", 5])
def test_run_with_bad_name_fails_before_starting(sync_task, name):
    with config_error(r"run name must"):
        flyte_nb.with_runcontext(name=name).run(sync_task, 1)


@pytest.mark.parametrize("name", ["", "a/b"])
def test_with_runcontext_bad_name_is_eager(name):
    with config_error(r"run name must"):
        flyte_nb.with_runcontext(name=name)


@pytest.mark.parametrize("options", [{"env_vars": 5}, {"env_vars": {"A": 1}}, {"listeners": 5}])
def test_with_runcontext_bad_env_vars_or_listeners(options):
    option = next(iter(options))
    with config_error(option):
        flyte_nb.with_runcontext(**options)


@pytest.mark.parametrize("thing", [42, "double", None, [plain_function]])
def test_run_needs_something_callable(thing):
    with config_error(r"flyte_nb\.run needs a task \(or a function\) to drive the run, got"):
        flyte_nb.run(thing)
    with config_error(r"flyte_nb\.run needs a task"):
        flyte_nb.with_runcontext().run(thing)
    with config_error(r"flyte_nb\.run needs a task"):
        asyncio.run(flyte_nb.run.aio(thing))


def test_run_of_a_generator_function_is_rejected():
    def numbers():
        yield 1

    with config_error(r"task `numbers` is a generator"):
        flyte_nb.run(numbers)


# ------------------------------------------------------------------------------------- init
def test_init_unknown_backend():
    with config_error(r"unknown backend 'nope'; choose one of: .*inline"):
        flyte_nb.init("nope")
    with config_error(r"unknown backend 5; choose one of: .*inline"):
        flyte_nb.init(5)


def test_init_unhashable_backend():
    with config_error(r"backend"):
        flyte_nb.init(["inline"])


def test_init_unknown_option():
    with config_error(r"init got unknown option\(s\): colour"):
        flyte_nb.init(colour="red")


def test_init_accepts_flyte_options(tmp_path):
    flyte_nb.init(backend="inline", org="o", project="p", domain="development", endpoint="dns:///x", root_dir=tmp_path)
    assert backends_base.default_backend() == "inline"


def test_init_root_dir_that_does_not_exist(tmp_path):
    missing = tmp_path / "missing"
    with config_error(r"root_dir '.*missing' is not a folder"):
        flyte_nb.init(root_dir=missing)
    not_a_folder = tmp_path / "file.txt"
    not_a_folder.write_text("x")
    with config_error(r"root_dir '.*file\.txt' is not a folder"):
        flyte_nb.init(root_dir=not_a_folder)


def test_init_failing_call_changes_nothing(tmp_path, flyte_home):
    before = home_dir()
    with config_error(r"root_dir .* is not a folder"):
        flyte_nb.init(home=tmp_path / "elsewhere", root_dir=tmp_path / "missing")
    assert home_dir() == before


# ------------------------------------------------------------------------- init_from_config
def _write_json(path, data):
    path.write_text(json.dumps(data))
    return path


def test_init_from_config_missing_file(tmp_path):
    with config_error(r"no config file at '.*nope\.json'"):
        flyte_nb.init_from_config(tmp_path / "nope.json")
    with config_error(r"no config file at"):
        flyte_nb.init_from_config(str(tmp_path / "nope.yaml"))


def test_init_from_config_unknown_key(tmp_path):
    path = _write_json(tmp_path / "config.json", {"admin": {"endpoint": "x"}, "flyte_nb": {"backend": "inline", "colour": "red"}})
    with config_error(r"unknown key\(s\) in the `flyte_nb` config section: colour"):
        flyte_nb.init_from_config(path)
    with config_error(r"unknown key\(s\) in the `flyte_nb` config section: colour"):
        flyte_nb.init_from_config({"flyte_nb": {"colour": "red"}})


def test_init_from_config_valid_json(tmp_path):
    home = tmp_path / "nb_home"
    path = _write_json(tmp_path / "config.json", {"admin": {"endpoint": "dns:///x"}, "flyte_nb": {"backend": "inline", "home": str(home)}})
    flyte_nb.init_from_config(path)
    assert backends_base.default_backend() == "inline"
    assert home_dir() == home


def test_init_from_config_without_flyte_nb_section(tmp_path):
    flyte_nb.init_from_config(_write_json(tmp_path / "config.json", {"admin": {"endpoint": "x"}}))


def test_init_from_config_bad_section_and_shape(tmp_path):
    with config_error(r"the `flyte_nb` section of the config must be a mapping"):
        flyte_nb.init_from_config(_write_json(tmp_path / "a.json", {"flyte_nb": ["backend"]}))
    with config_error(r"must hold a mapping at its top level"):
        flyte_nb.init_from_config(_write_json(tmp_path / "b.json", ["flyte_nb"]))
    with config_error(r"unknown backend 'nope'; choose one of: .*inline"):
        flyte_nb.init_from_config(_write_json(tmp_path / "c.json", {"flyte_nb": {"backend": "nope"}}))


def test_init_from_config_valid_yaml(tmp_path):
    home = tmp_path / "yaml_home"
    path = tmp_path / "config.yaml"
    path.write_text(f"admin:\n  endpoint: dns:///x\nflyte_nb:\n  backend: process\n  home: {home}\n")
    try:
        flyte_nb.init_from_config(path)
        assert backends_base.default_backend() == "process"
        assert home_dir() == home
    finally:
        flyte_nb.init(backend="inline")


def test_init_from_config_malformed_yaml(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("flyte_nb: [backend\n")
    with config_error(r"config\.yaml"):
        flyte_nb.init_from_config(path)


def test_init_from_config_yaml_without_pyyaml(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "yaml", None)  # `import yaml` now raises ImportError, as without PyYAML
    path = tmp_path / "config.yaml"
    path.write_text("flyte_nb:\n  backend: inline\n")
    with pytest.raises(ConfigurationError, match=r"reading config\.yaml needs PyYAML: pip install pyyaml"):
        flyte_nb.init_from_config(path)


def test_init_from_config_malformed_json(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("{not json")
    with config_error(r"config\.json"):
        flyte_nb.init_from_config(path)


def test_init_from_config_bad_argument_type():
    with config_error(r"path"):
        flyte_nb.init_from_config(5)


def test_init_from_config_unknown_option(tmp_path):
    path = _write_json(tmp_path / "config.json", {"flyte_nb": {"backend": "inline"}})
    with config_error(r"unknown option\(s\): colour"):
        flyte_nb.init_from_config(path, colour="red")


# ------------------------------------------------------------------- Semaphore, group, tags
@pytest.mark.parametrize("value", [0, -1, "3", True, 1.5, None])
def test_semaphore_bad_value(value):
    with config_error(r"Semaphore value must be a whole number >= 1, got"):
        flyte_nb.Semaphore(value)


def test_semaphore_good_value():
    semaphore = flyte_nb.Semaphore(2, name="api")
    assert semaphore.capacity == 2 and semaphore.name == "semaphore:api"


@pytest.mark.parametrize("name", ["", "   ", None, 5])
def test_group_bad_name(name):
    with config_error(r"group needs a non-empty name, got"):
        flyte_nb.group(name)


def test_tags_needs_names():
    with config_error(r"tags\(\.\.\.\) needs at least one tag name"):
        flyte_nb.tags()


@pytest.mark.parametrize("names", [("",), (1,), ("db", None)])
def test_tags_bad_names(names):
    with config_error(r"tags must be a list of non-empty strings, got"):
        flyte_nb.tags(*names)


# ------------------------------------------------------------------------------------ Image
@pytest.mark.parametrize("uri", ["", "   ", None, 5])
def test_image_from_base_needs_a_reference(uri):
    with config_error(r"Image\.from_base needs an image reference such as 'python:3\.11-slim', got"):
        Image.from_base(uri)


def test_image_from_dockerfile_missing(tmp_path):
    with config_error(r"Image\.from_dockerfile: no Dockerfile at '.*Dockerfile\.missing'"):
        Image.from_dockerfile(tmp_path / "Dockerfile.missing")
    with config_error(r"Image\.from_dockerfile: no Dockerfile at"):
        Image.from_dockerfile(tmp_path)  # a folder, not a file


def test_image_from_dockerfile_bad_type():
    with config_error(r"Image\.from_dockerfile"):
        Image.from_dockerfile(5)


@pytest.mark.parametrize("env_vars", [{"A": 1}, {1: "a"}, [("A", "b")], "A=b"])
def test_image_with_env_vars_needs_str_to_str(env_vars):
    with config_error(r"with_env_vars needs a dict of str to str, got"):
        Image.from_debian_base().with_env_vars(env_vars)


def test_image_bad_packages():
    with config_error(r"pip packages must be non-empty strings, got 1"):
        Image.from_debian_base().with_pip_packages("numpy", 1)
    with config_error(r"pip packages must be non-empty strings, got ''"):
        Image.from_debian_base().with_pip_packages("")
    with config_error(r"apt packages must be non-empty strings, got None"):
        Image.from_debian_base().with_apt_packages(["git", None])


@pytest.mark.parametrize("python", [3.11, "3", 3, (3,)])
def test_image_bad_python(python):
    with config_error(r"python must look like \(3, 11\) or '3\.11', got"):
        Image.from_debian_base(python)


def test_image_digest_is_stable_and_content_addressed(tmp_path):
    a = Image.from_debian_base("3.11").with_pip_packages("numpy").with_env_vars({"A": "1"})
    b = Image.from_debian_base((3, 11)).with_pip_packages("numpy").with_env_vars({"A": "1"})
    assert a == b and a.digest == b.digest
    assert len(a.digest) == 16
    assert a.with_pip_packages("pandas").digest != a.digest
    assert a.with_apt_packages("git").digest != a.digest
    assert Image.from_debian_base("3.12").with_pip_packages("numpy").with_env_vars({"A": "1"}).digest != a.digest
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM python:3.11-slim\n")
    first = Image.from_dockerfile(dockerfile).digest
    assert Image.from_dockerfile(dockerfile).digest == first
    dockerfile.write_text("FROM python:3.12-slim\n")
    assert Image.from_dockerfile(dockerfile).digest != first


# ----------------------------------------------------------------------------- seconds_from
@pytest.mark.parametrize("value, expected", [
    (30, 30.0),
    (2.5, 2.5),
    (0, 0.0),
    ("30", 30.0),
    ("30s", 30.0),
    ("5m", 300.0),
    ("1.5m", 90.0),
    ("250ms", 0.25),
    ("2h", 7200.0),
    ("1d", 86400.0),
    (" 10 s ", 10.0),
    (timedelta(minutes=2), 120.0),
    (timedelta(milliseconds=500), 0.5),
])
def test_seconds_from(value, expected):
    assert seconds_from(value, "timeout") == expected


@pytest.mark.parametrize("value", ["abc", "5 minutes", "1w", "", None, True, [30]])
def test_seconds_from_rejects(value):
    with config_error(r"idle_ttl must be seconds \(30\), a duration string \('30s', '5m'\) or a timedelta, got"):
        seconds_from(value, "idle_ttl")


def test_seconds_from_rejects_negative():
    with config_error(r"timeout must be a finite number of seconds >= 0, got -5"):
        seconds_from(-5, "timeout")
    with config_error(r"timeout must be a finite number of seconds >= 0"):
        seconds_from(timedelta(seconds=-1), "timeout")


# ------------------------------------------------------------------ tasks called outside a run
def test_sync_task_outside_a_run_is_a_plain_call(sync_task):
    assert sync_task(21) == 42
    assert sync_task(x=5) == 10


def test_sync_task_outside_a_run_raises_the_users_error(env):
    @env.task
    def boom():
        raise KeyError("mine")

    with pytest.raises(KeyError, match="mine"):
        boom()


def test_async_task_outside_a_run_returns_a_coroutine(async_task):
    pending = async_task(4)
    assert inspect.iscoroutine(pending)
    assert asyncio.run(pending) == 12


def test_aio_of_a_sync_task_outside_a_run(sync_task):
    pending = sync_task.aio(8)
    assert inspect.isawaitable(pending)
    assert asyncio.run(pending) == 16


def test_aio_of_an_async_task_outside_a_run(async_task):
    assert asyncio.run(async_task.aio(x=2)) == 6


def test_tasks_outside_a_run_inside_an_event_loop(sync_task, async_task):
    async def notebook_cell():
        return sync_task(1), await async_task(1), await sync_task.aio(2), await asyncio.gather(async_task(2), sync_task.aio(3))

    assert asyncio.run(notebook_cell()) == (2, 3, 4, [6, 6])
