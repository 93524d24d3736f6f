"""The process backend on real worker processes."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

import flyte_nb as flyte
from flyte_nb import Phase
from tests.timeline import peak

workers = flyte.TaskEnvironment("workers", backend="process", concurrency=2)
driver_env = flyte.TaskEnvironment("process-drivers")


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


@workers.task
def cpu(i: int) -> tuple[int, int]:
    spin(0.05)
    return i, os.getpid()


@driver_env.task
async def fan_out(n: int) -> list:
    return list(flyte.map(cpu, range(n), concurrency=4))


def test_actions_run_in_parallel_in_reused_worker_processes():
    start = time.perf_counter()
    run = flyte.run(fan_out, 16)
    results = run.outputs(timeout=30)
    elapsed = time.perf_counter() - start
    assert [i for i, _ in results] == list(range(16))
    pids = {pid for _, pid in results}
    assert len(pids) == 2 and os.getpid() not in pids
    children = [a for a in run.actions if a.task == "workers.cpu"]
    assert peak((a.started_at, a.ended_at) for a in children) == 2  # two at a time, never more
    assert elapsed < 16 * 0.05 + 10.0  # generous: a loaded machine stretches worker start-up


@workers.task
async def async_in_worker(x: int) -> int:
    await asyncio.sleep(0.01)
    return x * 10


@workers.task
def nested(x: int) -> int:
    return int(cpu(x)[0]) + 1  # a child action of the kernel's engine, in a worker of its own


@driver_env.task
async def mixed() -> list:
    return [await async_in_worker(4), await nested.aio(1)]


def test_async_tasks_and_nested_calls_in_workers():
    run = flyte.run(mixed)
    assert run.outputs(timeout=30) == [40, 2]
    assert {a.task for a in run.actions} == {"process-drivers.mixed", "workers.async_in_worker", "workers.nested",
                                             "workers.cpu"}
    child = next(a for a in run.actions if a.task == "workers.cpu")
    assert child.parent.task == "workers.nested" and child.phase == Phase.SUCCEEDED


class Unshippable(Exception):
    pass


@workers.task
def fails(kind: str) -> None:
    if kind == "value":
        raise ValueError("bad value in worker")
    raise KeyError("missing")


@pytest.mark.parametrize("kind,error", [("value", ValueError), ("key", KeyError)])
def test_errors_keep_their_type_with_the_remote_traceback(kind, error):
    run = flyte.run(fails, kind)
    with pytest.raises(error) as caught:
        run.outputs(timeout=30)
    notes = "\n".join(getattr(caught.value, "__notes__", []))
    assert "remote traceback (worker" in notes and "in fails" in notes
    assert "flyte_nb/backends" not in notes


connection = socket.socket()


@workers.task
def uses_a_socket() -> int:
    return connection.fileno()


def test_shipping_failure_names_the_global():
    run = flyte.run(uses_a_socket)
    with pytest.raises(flyte.SerializationError, match=r"cannot ship task `workers.uses_a_socket`: global `connection` "
                                                         r"of type `socket` cannot be pickled"):
        run.outputs(timeout=30)


@workers.task
def chatty(n: int) -> int:
    for i in range(n):
        print(f"line {i}", flush=True)
        time.sleep(0.05)
    return n


def test_output_streams_back_while_the_action_runs():
    seen: list[tuple[float, str]] = []

    def listener(event):
        if event.kind is flyte.EventKind.OUTPUT:
            seen.append((time.perf_counter(), event.data[1]))

    run = flyte.with_runcontext(listeners=[listener]).run(chatty, 5)
    run.outputs(timeout=30)
    done = time.perf_counter()
    assert [text for _, text in seen] == [f"line {i}\n" for i in range(5)]
    assert seen[0][0] < done - 0.15, "the first line arrived while the action was still running"
    assert run.actions[0].logs == "".join(f"line {i}\n" for i in range(5))


@workers.task(timeout=0.5)
def sleeps(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def test_a_timeout_kills_the_worker_and_the_pool_replaces_it():
    before = set(_worker_pids())
    run = flyte.run(sleeps, 30)
    start = time.perf_counter()
    with pytest.raises(flyte.ActionTimeoutError):
        run.outputs(timeout=30)
    assert time.perf_counter() - start < 3
    time.sleep(0.2)
    assert not (set(_worker_pids()) - before), "the timed-out worker is gone"
    assert flyte.run(sleeps, 0).outputs(timeout=30) > 0  # a fresh worker serves the next action


@workers.task(retries=1)
def dies_once(marker: str) -> str:
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(3)
    return "second attempt"


def test_a_worker_that_dies_fails_the_attempt_and_retries_apply(tmp_path):
    run = flyte.run(dies_once, str(tmp_path / "marker"))
    assert run.outputs(timeout=30) == "second attempt"
    action = run.actions[0]
    assert action.attempts == 2
    assert isinstance(action.history[0].error, flyte.WorkerDiedError)
    assert "exited with code 3" in str(action.history[0].error)


@workers.task(retries=1)
def slow_square(i: int) -> int:
    time.sleep(0.01)
    return i * i


@driver_env.task
async def two_hundred() -> list[int]:
    return list(flyte.map(slow_square, range(200), concurrency=2))


def test_kill_minus_nine_of_a_worker_mid_map():
    run = flyte.run(two_hundred)
    victim = None
    deadline = time.monotonic() + 20
    while victim is None and time.monotonic() < deadline:
        busy = [a for a in run.actions if a.phase == Phase.RUNNING and a.task == "workers.slow_square"]
        pids = _busy_worker_pids()
        if busy and pids and run.counts["succeeded"] > 20:
            victim = pids[0]
        time.sleep(0.005)
    os.kill(victim, signal.SIGKILL)
    assert run.outputs(timeout=60) == [i * i for i in range(200)]
    retried = [a for a in run.actions if a.attempts == 2]
    assert len(retried) == 1
    assert isinstance(retried[0].history[0].error, flyte.WorkerDiedError)
    assert "SIGKILL" in str(retried[0].history[0].error)


@driver_env.task
async def endless_map() -> list:
    return list(flyte.map(sleeps, [20] * 10, concurrency=2))


def test_abort_kills_every_running_worker():
    run = flyte.run(endless_map)
    deadline = time.monotonic() + 20
    while run.counts["running"] < 3 and time.monotonic() < deadline:  # driver + 2 workers busy
        time.sleep(0.02)
    busy = _busy_worker_pids()
    assert len(busy) == 2
    start = time.perf_counter()
    run.abort()
    assert time.perf_counter() - start < 2
    time.sleep(0.3)
    assert not set(busy) & set(_worker_pids())
    assert all(s.holders == 0 for s in run.statistics())


def _busy_worker_pids() -> list[int]:
    from flyte_nb.backends.process import _all_workers

    return [w.pid for w in tuple(_all_workers) if w.link.running]


def _worker_pids() -> list[int]:
    me = psutil.Process()
    return [p.pid for p in me.children() if "flyte_nb.worker" in " ".join(p.cmdline())]


def test_no_worker_outlives_its_kernel(tmp_path):
    script = tmp_path / "kernel.py"
    script.write_text(textwrap.dedent("""
        import os, time, flyte_nb as flyte
        env = flyte.TaskEnvironment("exit-test", backend="process", concurrency=2)

        @env.task
        def pid(i: int) -> int:
            return os.getpid()

        @flyte.TaskEnvironment("exit-driver").task
        async def main() -> list:
            return list(flyte.map(pid, range(4)))

        print(*sorted(set(flyte.run(main).outputs())), flush=True)
        if os.environ.get("DIE") == "kill":
            os.kill(os.getpid(), 9)
    """))
    for how in ("exit", "kill"):
        out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60,
                             env=dict(os.environ, DIE=how, PYTHONPATH=os.getcwd()))
        pids = [int(p) for p in out.stdout.split()]
        assert len(pids) == 2, out.stderr
        deadline = time.monotonic() + 5
        while any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids):
            assert time.monotonic() < deadline, f"workers outlived a kernel that did {how}"
            time.sleep(0.05)
