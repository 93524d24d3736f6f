"""Two kernels writing to one store at the same time lose nothing."""

from __future__ import annotations

import json
import sqlite3
import time

import flyte_nb as flyte
from flyte_nb import Phase
from flyte_nb.data.store import DB_NAME

from .conftest import assert_quiet, script, start

N = 2000

WRITER = """
import json, os, sys, time
from pathlib import Path
import flyte_nb as flyte
from flyte_nb.data import recorder
from tests.data.store_tasks import many, many_together

from flyte_nb.data.batch import RunBatch
from flyte_nb.data.writer import INTERVAL
assert recorder.writer().interval == INTERVAL  # the real pace: the kernels' transactions interleave as in use
commits = []
committed = RunBatch.committed
def timed_commit(self):
    if self.wrote:  # this batch's rows are in the store now
        commits.append(time.time())
    committed(self)
RunBatch.committed = timed_commit

go = Path(os.environ["FLYTE_NB_HOME"]) / "go"
while not go.exists():           # both kernels start writing at the same moment
    time.sleep(0.005)
me = sys.argv[1] if len(sys.argv) > 1 else None
run = flyte.run(many_together, %d, 4, f"half-{me}", f"half-{1 - int(me)}") if me else flyte.run(many, %d, 4)
total = run.outputs()
recorder.flush()
print(json.dumps({"name": run.name, "total": total, "commits": commits}))
""" % (N, N)


def test_two_kernels_writing_at_once_lose_nothing(tmp_path, home):
    path = script(tmp_path, WRITER)
    kernels = [start(path, home, str(i)) for i in range(2)]
    time.sleep(0.5)  # both imported and waiting
    (home / "go").write_text("")
    results = []
    for kernel in kernels:
        out, err = kernel.communicate(timeout=120)
        assert kernel.returncode == 0, err
        assert_quiet(err)
        results.append(json.loads(out.strip().splitlines()[-1]))
    expected = 3 * sum(range(N))
    assert [r["total"] for r in results] == [expected, expected]
    first, second = (r["commits"] for r in results)
    assert len(first) >= 3 and len(second) >= 3
    assert max(first[0], second[0]) < min(first[-1], second[-1])  # their writing overlapped (see many_together)
    merged = [who for _, who in sorted([(t, 0) for t in first] + [(t, 1) for t in second])]
    turns = sum(a != b for a, b in zip(merged, merged[1:]))
    assert turns >= 3, f"the kernels' commits did not interleave: {merged}"

    conn = sqlite3.connect(home / DB_NAME)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert conn.execute("SELECT count(*), count(DISTINCT key) FROM cache").fetchone() == (N, N)
    conn.close()
    for result in results:
        run = flyte.get_run(result["name"])
        assert run.phase == "succeeded" and run.outputs() == expected
        actions = run.actions
        assert len(actions) == N + 1 and [a.number for a in actions] == list(range(N + 1))
        children = actions[1:]
        assert {a.phase for a in children} <= {Phase.SUCCEEDED, Phase.CACHED}
        assert sorted(a.inputs()["x"] for a in children) == list(range(N))
        assert all(a.output() == 3 * a.inputs()["x"] for a in children)
        assert run.counts["succeeded"] + run.counts["cached"] == N + 1


def test_reading_while_another_kernel_writes(tmp_path, home):
    """Reads while the other kernel commits: each succeeds at once and sees a consistent, growing run."""
    kernel = start(script(tmp_path, WRITER), home)
    (home / "go").write_text("")
    live_reads, slowest, last = 0, 0.0, 0
    deadline = time.monotonic() + 60
    while kernel.poll() is None and time.monotonic() < deadline:
        started = time.monotonic()
        try:
            runs = flyte.runs()  # never blocks on the writer, never fails
        except flyte.StoreError as error:
            assert "no such table" in str(error) and last == 0  # only before the writer created the schema
            continue
        slowest = max(slowest, time.monotonic() - started)
        for run in runs:
            actions = run.actions
            numbers = [a.number for a in actions]
            assert numbers == list(range(len(numbers)))  # a committed prefix: no holes, no half transaction
            assert len(actions) >= last, "a later read saw fewer actions"
            last = len(actions)
            if run.phase == "running" and len(actions) > 1 and kernel.poll() is None:
                live_reads += 1
                assert all(a.output() == 3 * a.inputs()["x"] for a in actions[1:] if a.phase == "succeeded")
        time.sleep(0.02)
    _, err = kernel.communicate(timeout=60)
    assert kernel.returncode == 0, err
    assert_quiet(err)
    assert live_reads >= 3, f"only {live_reads} reads saw the run while it was being written"
    assert slowest < 5, f"a read waited {slowest:.1f} s for the writer"
    [run] = flyte.runs()
    assert run.phase == "succeeded" and len(run.actions) == N + 1 >= last


OPENER = """
import os, time
from pathlib import Path
from flyte_nb.data.store import get_store
go = Path(os.environ["FLYTE_NB_HOME"]) / "go"
while not go.exists():
    time.sleep(0.001)
get_store().connect().close()   # the first open creates the schema: all of them at once
print("ok")
"""


def test_kernels_creating_the_store_at_the_same_instant_all_succeed(tmp_path, home):
    for attempt in range(3):
        where = home / f"fresh-{attempt}"
        where.mkdir()
        path = script(tmp_path, OPENER, f"opener{attempt}.py")
        kernels = [start(path, where) for _ in range(4)]
        time.sleep(0.5)
        (where / "go").write_text("")
        for kernel in kernels:
            out, err = kernel.communicate(timeout=60)
            assert (kernel.returncode, out.strip()) == (0, "ok"), err
