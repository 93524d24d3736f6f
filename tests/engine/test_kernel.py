"""The Kernel object: one close() that shuts every backend down, one reset() for tests."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import psutil

import flyte_nb as flyte
from flyte_nb.engine.kernel import kernel

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _child(code: str, home) -> list[str]:
    env = dict(os.environ, PYTHONPATH=ROOT, FLYTE_NB_HOME=str(home))
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def _gone(pids: list[int], within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids):
            return True
        time.sleep(0.05)
    return False


def test_close_shuts_every_backend_down_and_forgets_them(flyte_home):
    out = _child("""
        import os, flyte_nb as flyte
        from flyte_nb.engine.kernel import kernel
        env = flyte.TaskEnvironment("kclose", backend="process", concurrency=2)

        @env.task
        def pid() -> int:
            return os.getpid()

        pids = {flyte.run(pid).outputs() for _ in range(2)}  # pooled: they stay up, idle
        print(*pids)
        kernel().close()
        print("backends", len(kernel().backends))
        from tests.engine.test_kernel import _gone
        print("gone", _gone(list(pids)))  # while this process lives: not because the kernel went
    """, flyte_home)
    backends = out.index("backends")
    assert out[:backends] and out[backends + 1] == "0"
    assert out[-2:] == ["gone", "True"], "Kernel.close() killed the process backend's workers"


def test_close_runs_at_interpreter_exit_and_kills_busy_workers(flyte_home):
    """A worker still running a body when the kernel exits is killed (the kernel does not wait for it)."""
    out = _child("""
        import os, time, flyte_nb as flyte
        env = flyte.TaskEnvironment("kexit", backend="process")

        @env.task
        def sleeper() -> int:
            print(os.getpid(), flush=True)
            time.sleep(60)
            return 1

        run = flyte.run(sleeper)
        while not run.actions or run.actions[0].phase != flyte.Phase.RUNNING:
            time.sleep(0.05)
        from flyte_nb.backends.base import get_backend
        deadline = time.time() + 60
        while not get_backend("process").workers and time.time() < deadline:  # running: its worker starts
            time.sleep(0.05)
        print(*[w.pid for w in get_backend("process").workers])
    """, flyte_home)
    pids = [int(p) for p in out][-1:]  # the worker (its body printed its pid too)
    assert pids
    assert _gone(pids, 15), "no worker outlives the kernel"


def test_reset_forgets_runs_names_and_listeners():
    heard = []
    flyte.with_runcontext(name="kept").run(lambda: 1).outputs(timeout=30)
    kernel().listeners.append(heard.append)
    assert [r.name for r in flyte.runs(limit=None) if r.name.startswith("kept")]  # kept by this kernel
    before = len(kernel().runs)
    assert before and "kept" in kernel().names
    kernel().reset()
    assert kernel().runs == {} and kernel().listeners == [] and "kept" not in kernel().names
    run = flyte.with_runcontext(name="again").run(lambda: 2)
    assert run.outputs(timeout=30) == 2 and heard == []  # the old listener no longer hears runs
    assert list(kernel().runs) == ["again"]


def test_reset_leaves_nothing_of_what_runs_kept(tmp_path, flyte_home):
    """Traced results, reports, durable call counts, checkpoints, env vars held, the chosen home and
    project: all are kernel parts or attributes, and reset() forgets every one of them."""
    from flyte_nb.context import current_project
    from flyte_nb.data.home import home_dir
    from flyte_nb.report.reports import open_reports

    env = flyte.TaskEnvironment("kreset", env_vars={"FLYTE_NB_KRESET": "1"})

    @flyte.trace
    def helper(x: int) -> int:
        return x + 1

    @env.task
    def body() -> str:
        flyte.report.log("<p>kept</p>")
        flyte.durable.time()
        assert os.environ["FLYTE_NB_KRESET"] == "1"
        return f"{helper(1)} {flyte.ctx().checkpoint is not None}"

    flyte.init(home=tmp_path / "chosen", project="kproject")
    run = flyte.run(body)
    assert run.outputs(timeout=60) == "2 True"
    assert open_reports(run.name) and current_project() == "kproject" and home_dir() == tmp_path / "chosen"
    kinds = {type(part).__name__ for part in kernel()._parts.values()}
    assert {"_KeptTraces", "_OpenReports", "_CallCounts", "_OpenCheckpoints", "_HeldVariables"} <= kinds
    kernel().reset()
    assert kernel()._parts == {} and open_reports(run.name) == []
    assert current_project() == "default" and home_dir() == flyte_home
    assert "FLYTE_NB_KRESET" not in os.environ
