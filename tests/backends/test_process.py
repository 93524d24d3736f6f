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
from tests.timeline import overlap, peak

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


@workers.task
def timed_cpu(i: int) -> tuple[int, int, float, float]:
    start = time.time()  # the wall clock: comparable between processes
    spin(0.2)  # long against a dispatch on a loaded machine (tens of ms there), so two bodies overlap for most of it
    return i, os.getpid(), start, time.time()


@driver_env.task
async def fan_out(n: int) -> list:
    return list(flyte.map(timed_cpu, range(n), concurrency=4))


def test_actions_run_in_parallel_in_reused_worker_processes():
    # Both workers are started first: under load a worker's start takes seconds, and meanwhile the
    # other one ran every child alone (ci22: seven bodies one after another, the eighth on the new one)
    assert len({r[1] for r in flyte.run(fan_out, 2).outputs(timeout=60)}) == 2
    results = flyte.run(fan_out, 8).outputs(timeout=60)
    assert [r[0] for r in results] == list(range(8))
    pids = {r[1] for r in results}
    assert len(pids) == 2 and os.getpid() not in pids
    bodies = [(r[2], r[3]) for r in results]
    assert peak(bodies) == 2, "the pool of 2 ran two bodies at once, never more"
    both = overlap(bodies)  # seconds during which two bodies ran at the same time
    busy = sum(end - start for start, end in bodies)
    assert both > 0.25 * busy / 2, f"bodies overlapped {both:.3f} s of {busy:.3f} s: they ran one after another"


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


@workers.task(timeout=0.5)
def sleeps_telling_pid(seconds: float, pid_file: str) -> int:
    with open(pid_file, "w") as file:
        file.write(str(os.getpid()))
    time.sleep(seconds)
    return os.getpid()


def _gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_timeout_kills_the_worker_and_the_pool_replaces_it(tmp_path):
    pid_file = tmp_path / "pid"
    run = flyte.run(sleeps_telling_pid, 30, str(pid_file))
    with pytest.raises(flyte.ActionTimeoutError):
        run.outputs(timeout=30)
    assert run.actions[0].ended_at - run.actions[0].started_at < 5, "the timeout fired, not the 30 s sleep"
    victim = int(pid_file.read_text())
    assert _gone(victim, within=5), f"the timed-out worker {victim} is still alive"
    assert flyte.run(sleeps, 0).outputs(timeout=30) not in (victim, 0)  # a fresh worker serves the next action


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
def slow_square(i: int, marker: str) -> int:
    if i == 50 and not os.path.exists(marker):  # SIGKILL of a worker that is surely busy, mid-map
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.01)
    return i * i


@driver_env.task
async def two_hundred(marker: str) -> list[int]:
    return list(flyte.map(slow_square, range(200), [marker] * 200, concurrency=2))


def test_kill_minus_nine_of_a_worker_mid_map(tmp_path):
    run = flyte.run(two_hundred, str(tmp_path / "killed"))
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
    from flyte_nb.backends.base import get_backend

    return [w.pid for w in tuple(get_backend("process").workers) if w.link.running]


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
