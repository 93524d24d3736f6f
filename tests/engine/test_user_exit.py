"""``SystemExit`` / ``KeyboardInterrupt`` raised by a task fail that action, never the engine (issue 18, item 3).

They used to escape an asyncio task on the engine loop and stop the loop for good: the run never
ended and every later run stayed queued until the kernel restarted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import pytest

import flyte_nb as flyte
from flyte_nb import Phase

inline = flyte.TaskEnvironment("exits")
procs = flyte.TaskEnvironment("exits-proc", backend="process", concurrency=2)


def _leave(how: str) -> None:
    if how == "exit":
        sys.exit(3)
    if how == "interrupt":
        raise KeyboardInterrupt("pressed in a task")
    if how == "argparse":
        argparse.ArgumentParser(prog="tool").parse_args(["--no-such-option"])
    raise ValueError(how)


@inline.task
def sync_leaves(how: str) -> int:
    _leave(how)
    return 1


@inline.task
async def async_leaves(how: str) -> int:
    _leave(how)
    return 1


@procs.task
def proc_leaves(how: str) -> int:
    _leave(how)
    return 1


@inline.task
async def fan_out(kind: str, how: str) -> list:
    child = {"sync": sync_leaves, "async": async_leaves, "process": proc_leaves}[kind]
    return list(flyte.map(child, [how, how], return_exceptions=False))


@inline.task
async def fine() -> str:
    return "later run works"


CASES = [(kind, how) for kind in ("sync", "async", "process") for how in ("exit", "interrupt", "argparse")]


@pytest.mark.parametrize("kind, how", CASES)
def test_an_exit_in_a_child_fails_that_action_and_the_engine_goes_on(kind, how):
    run = flyte.run(fan_out, kind, how)
    run.wait(timeout=60)
    assert run.phase == "failed"
    with pytest.raises(flyte.TaskExitError) as caught:
        run.outputs()
    error = caught.value
    original = {"exit": SystemExit, "interrupt": KeyboardInterrupt, "argparse": SystemExit}[how]
    assert isinstance(error.original, original) and error.__cause__ is error.original
    assert original.__name__ in str(error) and "\n" not in str(error)
    children = [a for a in run.actions if a.parent is not None]
    assert any(a.phase is Phase.FAILED for a in children) and all(a.phase.terminal for a in children)
    assert all(a.attempts <= 1 for a in children), "an explicit exit is not retried"
    assert flyte.run(fine).outputs(timeout=30) == "later run works"


@inline.task(retries=2)
async def root_exits() -> None:
    sys.exit("bye")


def test_an_exit_in_the_driver_fails_the_run_without_retries():
    run = flyte.run(root_exits)
    with pytest.raises(flyte.TaskExitError, match=r"SystemExit\('bye'\)"):
        run.outputs(timeout=30)
    assert run.actions[0].attempts == 1
    assert flyte.run(fine).outputs(timeout=30) == "later run works"


async def _plain_exit() -> None:
    raise SystemExit(4)


@inline.task
async def stray_task() -> str:
    asyncio.get_running_loop().create_task(_plain_exit())  # never awaited: nobody's action
    await asyncio.sleep(0.2)
    return "driver finished"


def test_a_stray_task_raising_exit_on_the_engine_loop_does_not_stop_it():
    assert flyte.run(stray_task).outputs(timeout=30) == "driver finished"
    assert flyte.run(fine).outputs(timeout=30) == "later run works"


@inline.task
async def awaits_stray() -> None:
    await asyncio.get_running_loop().create_task(_plain_exit())


def test_awaiting_a_plain_task_that_exits_fails_the_action_that_awaited_it():
    with pytest.raises(flyte.TaskExitError, match="SystemExit"):
        flyte.run(awaits_stray).outputs(timeout=30)
    assert flyte.run(fine).outputs(timeout=30) == "later run works"
