"""Limits that a task body must not hit (issue 18, item 14): nesting depth, and interpreter exit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

import flyte_nb as flyte

env = flyte.TaskEnvironment("limits")


@env.task
async def down(n: int) -> int:
    return 0 if n == 0 else 1 + await down(n - 1)


@env.task
def sync_down(n: int) -> int:
    return 0 if n == 0 else 1 + sync_down(n - 1)


@env.task
async def mixed_down(n: int) -> int:
    if n == 0:
        return 0
    if n == 200:
        return 1 + await sync_down.aio(n - 1)  # the last 200 levels: sync, a thread each
    return 1 + await mixed_down(n - 1)


@pytest.mark.parametrize("depth", [100, 400])
def test_nested_async_calls_go_as_deep_as_sync_ones(depth):
    """Each nested await ran inside its caller's frames: RecursionError at a depth of 75-100."""
    run = flyte.run(down, depth)
    assert run.outputs(timeout=120) == depth
    assert len(run.actions) == depth + 1 and run.counts["succeeded"] == depth + 1


def test_async_nesting_continued_by_sync_nesting_goes_400_deep():
    assert flyte.run(mixed_down, 400).outputs(timeout=120) == 400


@env.task(timeout=0.5)
async def nap_then_abort() -> None:
    await down(40)  # deeper than one hop: the fresh task is cancelled with its caller
    await asyncio_sleep(30)


async def asyncio_sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


def test_a_timeout_stops_children_running_on_a_fresh_stack():
    run = flyte.run(nap_then_abort)
    with pytest.raises(flyte.ActionTimeoutError):
        run.outputs(timeout=30)
    assert all(a.phase.terminal for a in run.actions)


_ABANDONED = textwrap.dedent("""
    import time
    import flyte_nb as flyte
    env = flyte.TaskEnvironment("exit-test")

    @env.task(timeout=1)
    def sleepy() -> None:
        time.sleep(30)

    run = flyte.run(sleepy)
    run.wait(timeout=60, quiet=True)
    print(run.phase, run.actions[0].phase, flush=True)
""")


def test_a_sync_body_abandoned_by_a_timeout_does_not_hold_interpreter_exit(tmp_path):
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", _ABANDONED], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, FLYTE_NB_HOME=str(tmp_path), PYTHONPATH=os.pathsep.join(sys.path)))
    elapsed = time.monotonic() - start
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["failed", "timed_out"]
    assert elapsed < 20, f"the process took {elapsed:.1f}s to exit: it waited for the abandoned 30 s sleep"
