"""A child's failure keeps its own type and matches the Flyte SDK's error classes, on every backend here.

The same ``ValueError`` is caught four ways: ``except ValueError``, ``except
flyte.errors.RuntimeUserError`` (``e.code == "ValueError"``), ``except Exception`` and as a value
returned by ``map``/``gather`` with ``return_exceptions=True``. Flyte's local mode keeps only the
second; flyte_nb keeps all four.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import time
import traceback

import pytest

import flyte_nb as flyte
from flyte_nb.errors import RuntimeUserError

BACKENDS = ("inline", "process")
drivers = flyte.TaskEnvironment("errors-drivers")


def judge(x: int) -> int:
    if x == 2:
        raise ValueError(f"item {x} is bad")
    return x * 10


def stubborn(kind: str) -> None:
    ATTEMPTS.append(kind)
    if kind == "final":
        raise flyte.errors.NonRecoverableError("give up at once")
    raise ConnectionError("try again")


def dies() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


ATTEMPTS: list[str] = []
ENVS = {name: flyte.TaskEnvironment(f"errors-{name}", backend=name, concurrency=2) for name in BACKENDS}
JUDGE = {name: env.task(judge) for name, env in ENVS.items()}
STUBBORN = {name: env.task(retries=2)(stubborn) for name, env in ENVS.items()}


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture(autouse=True, scope="module")
def no_idle_workers_left():
    """Other modules count this kernel's worker processes: leave none behind."""
    yield
    from flyte_nb.backends.base import get_backend
    from flyte_nb.engine.loop import engine

    engine().submit(get_backend("process").shutdown()).result(timeout=30)


def _seen(value: object) -> object:
    if isinstance(value, BaseException):
        return (type(value).__name__, isinstance(value, ValueError), isinstance(value, RuntimeUserError),
                getattr(value, "code", None), str(value))
    return value


@drivers.task
async def four_ways(backend: str) -> dict:
    child = JUDGE[backend]
    seen: dict = {}
    try:
        await child.aio(2)
    except ValueError as error:
        seen["except ValueError"] = str(error)
    try:
        await child.aio(2)
    except flyte.errors.RuntimeUserError as error:
        seen["except RuntimeUserError"] = (error.code, error.kind, str(error))
    try:
        await child.aio(2)
    except Exception as error:  # noqa: BLE001 - the point of the test
        seen["except Exception"] = type(error).__name__
    seen["map"] = [_seen(r) for r in flyte.map(child, [1, 2, 3], return_exceptions=True)]
    seen["gather"] = [_seen(r) for r in await asyncio.gather(child.aio(1), child.aio(2), return_exceptions=True)]
    return seen


def test_a_child_failure_is_caught_four_ways(backend):
    seen = flyte.run(four_ways, backend).outputs(timeout=60)
    returned = ("ValueError", True, True, "ValueError", "item 2 is bad")
    assert seen == {
        "except ValueError": "item 2 is bad",
        "except RuntimeUserError": ("ValueError", "user", "item 2 is bad"),
        "except Exception": "ValueError",
        "map": [10, returned, 30],
        "gather": [10, returned],
    }


@drivers.task
async def lets_it_fail(backend: str) -> int:
    return await JUDGE[backend].aio(2)


def test_the_run_raises_the_childs_error_as_both_with_its_traceback(backend):
    run = flyte.run(lets_it_fail, backend)
    with pytest.raises(ValueError, match="item 2 is bad") as caught:
        run.outputs(timeout=60)
    error = caught.value
    assert isinstance(error, flyte.errors.RuntimeUserError) and error.code == "ValueError"
    assert repr(error) == "ValueError('item 2 is bad')"
    text = "".join(traceback.format_exception(error))
    assert 'raise ValueError(f"item {x} is bad")' in text and "\nValueError: item 2 is bad" in text
    assert any("errors-" in note and "judge" in note for note in error.__notes__)
    failed = [a for a in run.actions if a.error is not None]
    assert all(isinstance(a.error, ValueError) and isinstance(a.error, RuntimeUserError) for a in failed)
    restored = pickle.loads(pickle.dumps(error))
    assert type(restored) is type(error) and restored.code == "ValueError" and restored.args == error.args
    assert restored.__notes__ == error.__notes__


@drivers.task
async def keeps_trying(backend: str, kind: str) -> None:
    await STUBBORN[backend].aio(kind)


def test_non_recoverable_error_stops_retries_and_others_use_them(backend):
    run = flyte.run(keeps_trying, backend, "final")
    with pytest.raises(flyte.errors.NonRecoverableError, match="give up at once"):
        run.outputs(timeout=60)
    (child,) = [a for a in run.actions if a.task.endswith("stubborn")]
    assert child.attempts == 1
    run = flyte.run(keeps_trying, backend, "again")
    with pytest.raises(ConnectionError) as caught:
        run.outputs(timeout=60)
    assert caught.value.code == "ConnectionError"
    (child,) = [a for a in run.actions if a.task.endswith("stubborn")]
    assert child.attempts == 3


slow_env = flyte.TaskEnvironment("errors-slow")


@slow_env.task(timeout=0.3)
async def too_slow() -> None:
    await asyncio.sleep(30)


@drivers.task
async def times_out() -> tuple:
    try:
        await too_slow()
    except flyte.errors.TaskTimeoutError as error:
        return (type(error).__name__, error.code, isinstance(error, TimeoutError),
                isinstance(error, flyte.ActionTimeoutError))
    return ()


def test_a_timeout_is_a_flyte_task_timeout_error():
    assert flyte.run(times_out).outputs(timeout=30) == ("ActionTimeoutError", "MaxRuntimeExceededError", True, True)


@drivers.task
async def lingers() -> None:
    await asyncio.sleep(30)


def test_an_abort_is_a_flyte_action_aborted_error():
    run = flyte.run(lingers)
    time.sleep(0.2)
    run.abort(reason="enough")
    with pytest.raises(flyte.errors.ActionAbortedError, match="enough") as caught:
        run.outputs(timeout=30)
    assert isinstance(caught.value, flyte.RunAbortedError) and caught.value.code == "ActionAbortedError"


DIES = ENVS["process"].task(dies)


@drivers.task
async def loses_its_worker() -> tuple:
    try:
        await DIES.aio()
    except flyte.errors.RuntimeSystemError as error:
        return (type(error).__name__, error.kind, isinstance(error, flyte.WorkerDiedError))
    return ()


def test_a_dead_worker_is_a_flyte_runtime_system_error():
    assert flyte.run(loses_its_worker).outputs(timeout=60) == ("WorkerDiedError", "system", True)


def test_an_out_of_memory_kill_is_an_oom_error_and_a_dead_worker():
    error = flyte.errors.OutOfMemoryError("the container was killed: out of memory")
    assert isinstance(error, flyte.errors.OOMError) and isinstance(error, flyte.WorkerDiedError)
    assert (error.code, error.kind) == ("OOMError", "user")
    assert isinstance(pickle.loads(pickle.dumps(error)), flyte.errors.OOMError)


def test_mapping_keeps_attributes_and_passes_sdk_errors_and_base_exceptions_through():
    from flyte_nb.errors import flyte_error

    mapped = flyte_error(FileNotFoundError(2, "No such file", "/data/x"))
    assert isinstance(mapped, FileNotFoundError) and (mapped.errno, mapped.filename) == (2, "/data/x")
    assert str(mapped) == "[Errno 2] No such file: '/data/x'" and mapped.code == "FileNotFoundError"
    assert type(flyte_error(KeyError("a"))) is type(flyte_error(KeyError("b")))  # one class per class
    custom = flyte.errors.CustomError("MyCode", "mine")
    assert flyte_error(custom) is custom and custom.code == "MyCode"
    interrupt = KeyboardInterrupt()
    assert flyte_error(interrupt) is interrupt
    summed = flyte_error(ValueError("bad"))
    with pytest.raises(ValueError, match="bad"):  # Flyte: summing returned errors raises the real one
        sum([1, summed])
