"""A kernel that dies mid-run leaves its run marked and readable."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import pytest

import flyte_nb as flyte
from flyte_nb import Phase
from flyte_nb.data.store import DB_NAME, get_store

from .conftest import assert_quiet, script, start

KERNEL = """
from tests.data.store_tasks import slow_map
import flyte_nb as flyte
run = flyte.run(slow_map, 12, 5)
print(run.name, flush=True)
run.wait(quiet=True)
"""


def wait_for(home, name: str, succeeded: int, timeout: float = 20) -> None:
    """Poll the store (as another kernel would) until ``succeeded`` actions of ``name`` are committed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = sqlite3.connect(home / DB_NAME, timeout=5)
            found = conn.execute("SELECT count(*) FROM actions WHERE run = (SELECT id FROM runs WHERE name = ?) "
                                 "AND phase = 'succeeded'", (name,)).fetchone()[0]
            conn.close()
            if found >= succeeded:
                return
        except sqlite3.OperationalError:
            pass  # not created yet
        time.sleep(0.05)
    raise AssertionError(f"run {name} never recorded {succeeded} succeeded actions")


def test_a_run_killed_with_sigkill_is_marked_and_readable(tmp_path, home):
    kernel = start(script(tmp_path, KERNEL), home)
    name = kernel.stdout.readline().strip()
    assert name, kernel.stderr.read()
    wait_for(home, name, succeeded=5)
    assert flyte.get_run(name).phase == "running"  # still alive: not reaped
    kernel.send_signal(signal.SIGKILL)
    kernel.wait(10)
    kernel.stdout.close()
    kernel.stderr.close()

    run = flyte.get_run(name)
    assert run.phase == "aborted" and run.abort_reason == "kernel exited" and run.done()
    with pytest.raises(flyte.RunAbortedError, match="kernel exited"):
        run.outputs()
    finished = [a for a in run.actions if a.phase is Phase.SUCCEEDED]
    assert sorted(a.output() for a in finished) == [0, 1, 2, 3, 4]
    assert sorted(a.inputs()["x"] for a in finished) == [0, 1, 2, 3, 4]
    hanging = [a for a in run.actions if a.task == "store_tests.slow" and a.phase is not Phase.SUCCEEDED]
    assert hanging and all(a.phase is Phase.CANCELLED and a.note == "kernel exited" for a in hanging)
    assert all(a.tags == ("io",) for a in finished + hanging)
    assert run.ended_at >= run.started_at
    assert run.inputs() == {"n": 12, "fast": 5}
    assert_counts_agree(home, name)  # they said running: 7 forever while the actions said cancelled


def assert_counts_agree(home, name: str) -> None:
    """The run's counts (what the Runs panel shows) are exactly its recorded actions' phases."""
    conn = sqlite3.connect(home / DB_NAME)
    run_id, counts, total = conn.execute("SELECT id, counts, actions FROM runs WHERE name = ?", (name,)).fetchone()
    phases = dict(conn.execute("SELECT phase, count(*) FROM actions WHERE run = ? GROUP BY phase", (run_id,)))
    conn.close()
    assert {k: v for k, v in json.loads(counts).items() if v} == phases and total == sum(phases.values())
    assert not {"queued", "waiting", "running"} & set(phases)


def test_a_kernel_that_exits_cleanly_mid_run_marks_its_run(tmp_path, home):
    code = KERNEL.replace("run.wait(quiet=True)", "import time; time.sleep(1.0)")  # exits with the run going
    kernel = start(script(tmp_path, code), home)
    out, err = kernel.communicate(timeout=60)
    assert kernel.returncode == 0, err
    assert_quiet(err)
    run = flyte.get_run(out.strip())
    assert run.phase == "aborted" and run.abort_reason == "kernel exited"
    assert len([a for a in run.actions if a.phase is Phase.SUCCEEDED]) == 5
    assert_counts_agree(home, run.name)


def _row(conn: sqlite3.Connection, name: str, pid: int, host: str, token: str | None) -> None:
    conn.execute("INSERT INTO runs (name, driver, phase, created_at, pid, host, process) VALUES (?, 'd', 'running', ?, "
                 "?, ?, ?)", (name, time.time(), pid, host, token))


def test_only_runs_of_dead_processes_on_this_host_are_reaped(home):
    store = get_store()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    from flyte_nb.data.store import TOKEN
    with store.writing() as conn:
        _row(conn, "dead", gone.pid, socket.gethostname(), "x:1")
        _row(conn, "me", os.getpid(), socket.gethostname(), TOKEN)
        _row(conn, "reused-pid", os.getpid(), socket.gethostname(), "another-boot:123")
        _row(conn, "elsewhere", gone.pid, "some-other-host", None)
    assert sorted(store.reap()) == ["dead", "reused-pid"]
    phases = {r.name: r.phase for r in flyte.runs(limit=None)}
    assert phases == {"dead": "aborted", "me": "running", "reused-pid": "aborted", "elsewhere": "running"}
    assert store.reap() == []


def test_an_exit_that_begins_mid_batch_still_writes_a_runs_last_events(home, monkeypatch):
    """Interpreter exit while the writer is between draining and committing: the next batch has the last word."""
    from flyte_nb.data import batch, recorder
    from flyte_nb.engine.events import Event, EventKind
    from flyte_nb.engine.run_state import RunState

    from .conftest import stored
    from .store_tasks import pipeline

    store = get_store()
    state = RunState("exit-race", pipeline.spec, (1,), {}, {})
    _, run_id = batch.insert_run(store, state, None, lambda name: False)
    writer = recorder.Writer()  # driven by hand, no thread
    listener = recorder.RunListener(writer, store, state)
    log = batch.RunBatch(listener)
    log.run_id = run_id
    listener(Event(EventKind.RUN_STARTED, state))
    root = state.new_action(pipeline.spec, None, None, ())
    root.started_at = time.time()
    state.transition(root, Phase.RUNNING)
    listener.on_action(root, Phase.RUNNING, ((1,), {}))
    build = batch.RunBatch.build

    def exit_arrives(self: batch.RunBatch, conn) -> tuple:
        built = build(self, conn)
        if not writer.exiting:
            writer.exiting = True  # atexit begins while this batch is being written ...
            root.ended_at = state.ended_at = time.time()
            state.transition(root, Phase.SUCCEEDED)
            state.phase = "succeeded"
            listener.on_action(root, Phase.SUCCEEDED, [100])  # ... and the run's end arrives
            listener(Event(EventKind.RUN_FINISHED, state))
        return built

    monkeypatch.setattr(batch.RunBatch, "build", exit_arrives)
    writer._cycle([log])
    assert not log.closed  # that batch predates the exit: it is not the last word
    writer._cycle([log])
    writer.close()
    assert log.closed
    record = stored("exit-race")
    assert record.phase == "succeeded" and record.outputs() == [100]
