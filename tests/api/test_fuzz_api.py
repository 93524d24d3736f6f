"""Property-based fuzzing of the public API's arguments (issue 18).

Invariant, for every argument hypothesis makes up: the call either works or fails at once with a
``flyte_nb.ConfigurationError`` or ``TypeError`` whose message is one line -- never a hang, never an
error from deep inside flyte_nb, and a run that starts always ends in a final phase. Examples per
property are kept modest; ``EXAMPLES`` counts them (the last test prints the tally).
"""

from __future__ import annotations

import collections
import math
import traceback
from datetime import timedelta

import pytest

from tests.hangs import bounded
from hypothesis import HealthCheck, given, settings, strategies as st

import flyte_nb as flyte
from flyte_nb import Backoff, Cache, ConfigurationError, Resources, RetryStrategy, TaskEnvironment, Timeout

EXAMPLES: collections.Counter[str] = collections.Counter()
FINAL = ("succeeded", "failed", "aborted")
FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RUNS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Values a careless or hostile caller might pass anywhere.
junk = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.just(10**400),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12), st.binary(max_size=6),
    st.sampled_from(["1s", "250ms", "5m", "0", "-1s", "1e999s", "500m", "2", "0.5", "1Gi", "512Mi", "12XB", "auto",
                     "disable", "override", "enabled", "A100:1", "inline", "process", "..", "/", "db", ""]),
    st.lists(st.integers(-3, 3), max_size=3).map(tuple), st.lists(st.text(max_size=3), max_size=3),
    st.dictionaries(st.text(max_size=4), st.one_of(st.integers(-2, 3), st.text(max_size=3)), max_size=3),
    st.timedeltas(min_value=timedelta(seconds=-5), max_value=timedelta(seconds=5)),
    st.builds(object),
)
durations = st.one_of(junk, st.floats(0, 0.05), st.sampled_from(["10ms", "1ms", timedelta(milliseconds=5)]))


@pytest.fixture(autouse=True)
def _no_hang():
    """Each property must finish in bounded time: a hang fails the test instead of the CI job."""
    with bounded(240, "a fuzz property"):
        yield


def clean(error: BaseException, also: tuple[type[BaseException], ...] = ()) -> None:
    """Fail unless ``error`` is a refusal the user can act on (or one of ``also``, expected outcomes)."""
    assert isinstance(error, (ConfigurationError, TypeError, *also)), f"{type(error).__name__}: {error}"
    assert "\n" not in str(error).strip(), f"a message of several lines: {error}"
    if not isinstance(error, ConfigurationError):  # a TypeError must come from the call itself, not from inside
        inner = [f for f in traceback.extract_tb(error.__traceback__) if "/flyte_nb/" in f.filename]
        where = "".join(traceback.format_tb(error.__traceback__))
        assert len(inner) <= 1, f"TypeError from deep inside flyte_nb:\n{where}"


def attempt(label: str, fn, /, *args, also: tuple[type[BaseException], ...] = (), **kwargs):
    """``fn(...)`` or None when it refused cleanly; counts the example."""
    EXAMPLES[label] += 1
    try:
        return fn(*args, **kwargs)
    except Exception as error:  # noqa: BLE001 - judged by clean()
        clean(error, also)
        return None


def ends(run: flyte.Run) -> None:
    run.wait(timeout=60, quiet=True)
    assert run.phase in FINAL and all(a.phase.terminal for a in run.actions)


async def _one(x: int = 1) -> int:
    return x


# --------------------------------------------------------------------------------- constructors
@FAST
@given(cpu=junk, memory=junk, gpu=junk, disk=junk)
def test_resources(cpu, memory, gpu, disk):
    resources = attempt("Resources", Resources, cpu=cpu, memory=memory, gpu=gpu, disk=disk)
    if resources is not None:
        for limit in (resources.cpu_limit, resources.memory_limit):
            assert limit is None or (math.isfinite(limit) and limit > 0)


@FAST
@given(name=st.one_of(junk, st.from_regex(r"[A-Za-z_][A-Za-z0-9_.\-]{0,10}", fullmatch=True)), concurrency=junk,
       env_vars=junk, cache=junk, backend=junk, throttle=junk, image=junk,
       resources=st.one_of(junk, st.just(Resources(cpu=1))))
def test_task_environment(name, concurrency, env_vars, cache, backend, throttle, image, resources):
    kwargs = dict(concurrency=concurrency, env_vars=env_vars, cache=cache, throttle=throttle, image=image,
                  resources=resources)
    if backend in ("inline", None):  # other backends need a daemon or a cluster to run; constructing is enough
        kwargs["backend"] = backend
    attempt("TaskEnvironment", TaskEnvironment, name, **kwargs)


retry_options = st.one_of(
    junk, st.integers(0, 3),
    st.builds(RetryStrategy, count=junk, backoff=st.one_of(junk, st.builds(Backoff, base=junk, factor=junk, cap=junk))),
)
def _made(cls):
    """A strategy of ``cls(**drawn)``, or of the refusal itself: policies validate as they are made, and a
    strategy that raised would stop the generation, not test anything."""
    def make(**kwargs):
        try:
            return cls(**kwargs)
        except Exception as error:  # noqa: BLE001 - judged where it is made: it must be a clean refusal
            clean(error)
            return error
    return make


timeout_options = st.one_of(durations, st.builds(_made(Timeout), max_runtime=durations, max_queued_time=junk))
cache_options = st.one_of(junk, st.builds(_made(Cache), behavior=junk, version_override=junk, ignored_inputs=junk))

env = TaskEnvironment("fuzz")


@RUNS
@given(retries=retry_options, timeout=timeout_options, cache=cache_options, tags=junk, throttle=junk,
       short_name=st.one_of(st.none(), st.text(max_size=8)))
def test_task_options_then_one_run(retries, timeout, cache, tags, throttle, short_name):
    """Whatever the options, the decorated task either is refused or runs to a final phase."""
    task = attempt("env.task", env.task(retries=retries, timeout=timeout, cache=cache, tags=tags, throttle=throttle,
                                        short_name=short_name), _one)
    if task is not None:
        ends(flyte.run(task, 2))


# ------------------------------------------------------------------------------------- runtime
@env.task
async def leaf(i: int) -> int:
    return i


@env.task
async def mapper(options: dict) -> str:
    try:
        list(flyte.map(leaf, range(5), **options))
    except (ConfigurationError, TypeError) as error:
        clean(error)
        return "refused"
    return "mapped"


@RUNS
@given(concurrency=junk, group_name=junk, return_exceptions=junk)
def test_map_options_inside_a_run(concurrency, group_name, return_exceptions):
    EXAMPLES["map"] += 1
    run = flyte.run(mapper, {"concurrency": concurrency, "group_name": group_name,
                             "return_exceptions": return_exceptions})
    ends(run)
    assert run.phase == "succeeded", run.error


@RUNS
@given(name=st.one_of(junk, st.text(min_size=1, max_size=20)), throttle=junk, env_vars=junk)
def test_run_context_then_one_run(name, throttle, env_vars):
    context = attempt("with_runcontext", flyte.with_runcontext, name=name, throttle=throttle, env_vars=env_vars)
    if context is not None:
        run = context.run(_one, 3)
        ends(run)
        assert run.outputs() == 3 and (name is None or run.name.startswith(name))


@RUNS
@given(timeout=junk)
def test_wait_timeout(timeout):
    run = flyte.run(_one)
    attempt("run.wait", run.wait, timeout=timeout, quiet=True, also=(TimeoutError,))  # a short wait may expire
    ends(run)


def test_zz_tally(capsys):
    """Not a property: prints how many examples ran (run with -s, or read the report)."""
    with capsys.disabled():
        print("\nfuzz examples: " + ", ".join(f"{k}={v}" for k, v in sorted(EXAMPLES.items()))
              + f" (total {sum(EXAMPLES.values())})")
