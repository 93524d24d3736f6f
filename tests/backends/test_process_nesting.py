"""Process workers: nesting limits, cancellation both ways, redefined environments, workers that die with the kernel."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

import flyte_nb as flyte
from flyte_nb import Phase
from flyte_nb.backends.base import get_backend

solo = flyte.TaskEnvironment("solo", backend="process", concurrency=1)


@solo.task
def leaf(i: int) -> int:
    return i * i


@solo.task
async def solo_driver(n: int) -> list[int]:
    return list(flyte.map(leaf, range(n)))


def test_a_concurrency_one_environment_holds_its_driver_and_its_children():
    run = flyte.run(solo_driver, 5)
    assert run.outputs(timeout=60) == [0, 1, 4, 9, 16]
    assert len(run.actions) == 6 and all(a.parent is run.actions[0] for a in run.actions[1:])
    assert all(s.holders == 0 for s in run.statistics())


@solo.task
async def exits_inside(marker: str) -> str:
    async def quits() -> None:
        await asyncio.sleep(0)
        sys.exit(3)

    async def left_behind() -> None:
        await asyncio.sleep(1.0)
        open(marker, "w").close()

    asyncio.get_running_loop().create_task(left_behind())  # must not outlive its action
    await asyncio.gather(quits(), asyncio.sleep(5))
    return "unreachable"


@solo.task
async def plain_async() -> int:
    await asyncio.sleep(0.01)
    return os.getpid()


def test_system_exit_inside_a_worker_fails_that_action_only_and_the_next_one_runs_clean(tmp_path):
    marker = tmp_path / "left-behind"
    with pytest.raises(flyte.TaskExitError) as failed:  # the action fails; the kernel's engine goes on
        flyte.run(exits_inside, str(marker)).outputs(timeout=60)
    assert isinstance(failed.value.original, SystemExit)
    first = flyte.run(plain_async).outputs(timeout=60)
    second = flyte.run(plain_async).outputs(timeout=60)
    assert first == second  # the same worker serves both: it survived
    time.sleep(1.5)
    assert not marker.exists(), "a task the failed action left on the worker's loop kept running"


sleepers = flyte.TaskEnvironment("sleepers", backend="process", concurrency=4)


@sleepers.task
def sleep_for(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


@sleepers.task(timeout=8)  # long enough for a worker started on a very loaded machine (load 17) to make both calls
async def parent_times_out() -> list:
    return await asyncio.gather(sleep_for.aio(30), sleep_for.aio(30))


@sleepers.task
async def parent_dies() -> None:
    calls = [asyncio.ensure_future(sleep_for.aio(30)) for _ in range(2)]
    await asyncio.sleep(1.0)
    os.kill(os.getpid(), signal.SIGKILL)
    await asyncio.gather(*calls)


@sleepers.task
async def survives(which: str) -> str:
    try:
        await (parent_times_out() if which == "timeout" else parent_dies())
    except Exception as error:  # noqa: BLE001
        name = type(error).__name__
    await asyncio.sleep(1.5)  # the run goes on: only the failed parent's children must stop
    return name


@pytest.mark.parametrize("which,phase,error", [("timeout", Phase.TIMED_OUT, "ActionTimeoutError"),
                                               ("dies", Phase.FAILED, "WorkerDiedError")])
def test_a_parent_that_times_out_or_whose_worker_dies_cancels_its_children(which, phase, error):
    run = flyte.run(survives, which)
    assert run.outputs(timeout=60) == error
    driver, parent, *children = run.actions
    assert parent.phase == phase
    assert len(children) == 2 and all(a.phase == Phase.CANCELLED for a in children)
    assert all(a.ended_at < driver.ended_at - 1.0 for a in children), "cancelled with their parent, not at run end"
    deadline = time.monotonic() + 5
    while any(w.link.running for w in tuple(get_backend("process").workers)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [w.pid for w in tuple(get_backend("process").workers) if w.link.running], "no worker still runs a child"
    assert all(s.holders == 0 for s in run.statistics())


def test_redefining_an_environment_takes_effect_at_once():
    def define(value: str, concurrency: int):
        env = flyte.TaskEnvironment("redefined", backend="process", concurrency=concurrency, env_vars={"SETTING": value})

        @env.task
        def setting(i: int) -> tuple[str, int]:
            time.sleep(0.2)
            return os.environ["SETTING"], os.getpid()

        @flyte.TaskEnvironment("redefined-driver").task
        async def main() -> list:
            return list(flyte.map(setting, range(4)))

        return main

    old = flyte.run(define("old", 1), ).outputs(timeout=60)
    assert {v for v, _ in old} == {"old"} and len({p for _, p in old}) == 1
    new = flyte.run(define("new", 2)).outputs(timeout=60)
    assert {v for v, _ in new} == {"new"} and len({p for _, p in new}) == 2


def test_a_busy_worker_dies_with_a_killed_kernel(tmp_path):
    script = tmp_path / "kernel.py"
    script.write_text(textwrap.dedent("""
        import os, sys, time, flyte_nb as flyte
        env = flyte.TaskEnvironment("busy-exit", backend="process", concurrency=1)

        @env.task
        def busy() -> None:
            print(os.getpid(), flush=True)
            time.sleep(120)

        run = flyte.run(busy)
        while not run.actions or not run.actions[0].logs:
            time.sleep(0.02)
        sys.__stdout__.write("PID=" + run.actions[0].logs)
        sys.__stdout__.flush()
        os.kill(os.getpid(), 9)
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=os.getcwd()))
    pid = int(out.stdout.split("PID=")[1].split()[0])
    deadline = time.monotonic() + 5
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "a busy worker outlived its SIGKILLed kernel"
        time.sleep(0.05)
