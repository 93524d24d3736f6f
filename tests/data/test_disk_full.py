"""A disk that fills mid-run: nothing recorded is lost, reads go on, one warning, no stray value files.

The store lives on a real 8 MB tmpfs that the test fills with a file (see ``small_disk``); a child
process is the kernel. Before the fix a run recorded this way stayed ``queued`` with 0 actions and
left megabytes of value files no row named, and reading the store failed while the disk was full.
"""

from __future__ import annotations

import json
import pickle
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flyte_nb.data.store import DB_NAME

from .conftest import child_env, fill, referenced_digests, script, value_files

KERNEL = """
import json, os, sys, time
from pathlib import Path
import flyte_nb as flyte
from flyte_nb.data import recorder

ctl = Path(sys.argv[1])
env = flyte.TaskEnvironment("disk")

def wait_for(name):
    while not (ctl / name).exists():
        time.sleep(0.02)

@env.task
async def big(i: int) -> bytes:
    print("made", i)
    return bytes([i]) * 40_000  # over INLINE_MAX: each output is a value file

@env.task
async def main(n: int) -> int:
    first = [b async for b in flyte.map.aio(big, range(n))]
    (ctl / "half").write_text("")
    wait_for("full")                   # the disk is full now
    second = [b async for b in flyte.map.aio(big, range(n, 2 * n))]
    (ctl / "second").write_text("")
    wait_for(os.environ["RESUME_ON"])  # space returns (or the kernel exits with the disk still full)
    return len(first) + len(second)

run = flyte.with_runcontext(name="filled").run(main, 10)
print(json.dumps({"total": run.outputs(), "phase": run.phase}), flush=True)
"""

READER = """
import json, sys
import flyte_nb as flyte
from flyte_nb.server import queries
from flyte_nb.server.handlers import Reader

runs = {r.name: (r.phase, len(r.actions)) for r in flyte.runs()}
first = flyte.get_run("filled").actions[1].output()
page = Reader(sys.argv[1]).read(queries.list_runs, queries.Paths(sys.argv[1]))
print(json.dumps({"runs": runs, "first": len(first), "listed": [r["name"] for r in page["runs"]]}))
"""


def _wait(path: Path, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path.name} never came"
        time.sleep(0.02)


def _committed(home: Path, succeeded: int) -> None:
    """Wait until the first half's actions are committed (recorded before the disk fills)."""
    deadline = time.monotonic() + 20
    while True:
        conn = sqlite3.connect(home / DB_NAME)
        try:
            done = conn.execute("SELECT count(*) FROM actions WHERE phase = 'succeeded'").fetchone()[0]
        except sqlite3.OperationalError:  # no such table yet: the writer creates the store with its first batch
            done = 0
        finally:
            conn.close()
        if done >= succeeded:
            return
        assert time.monotonic() < deadline, f"only {done} actions were committed"
        time.sleep(0.05)


def _read_while_full(tmp_path: Path, home: Path) -> dict:
    done = subprocess.run([sys.executable, str(script(tmp_path, READER, "reader.py")), str(tmp_path)],
                          env=child_env(home), capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _check_store(home: Path) -> tuple[str, dict, int]:
    """Invariants after the fault: a final phase, counts equal to the actions' phases, every value file named."""
    conn = sqlite3.connect(home / DB_NAME)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    run_id, phase, counts, total = conn.execute(
        "SELECT id, phase, counts, actions FROM runs WHERE name = 'filled'").fetchone()
    phases = dict(conn.execute("SELECT phase, count(*) FROM actions WHERE run = ? GROUP BY phase", (run_id,)))
    assert phase in ("succeeded", "failed", "aborted")
    assert {k: v for k, v in json.loads(counts).items() if v} == phases and total == sum(phases.values())
    named = referenced_digests(conn)
    conn.close()
    files = value_files(home)
    assert not [f for f in files if f.name.endswith(".tmp")], "a half-written value file was left"
    assert {f.name for f in files} == named, "value files that no row names (or rows naming missing files)"
    return phase, phases, len(files)


@pytest.fixture(autouse=True)
def _no_kernel_left():
    """A failed test must not leave a child kernel waiting for a signal file forever."""
    yield
    for kernel in _kernels:
        if kernel.poll() is None:
            kernel.kill()
            kernel.communicate(timeout=30)
    _kernels.clear()


_kernels: list[subprocess.Popen] = []


def _start(tmp_path: Path, home: Path, resume_on: str) -> subprocess.Popen:
    ctl = tmp_path / "ctl"
    ctl.mkdir()
    return _kept(subprocess.Popen([sys.executable, str(script(tmp_path, KERNEL)), str(ctl)],
                            env={**child_env(home), "RESUME_ON": resume_on}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True))


def _kept(kernel: subprocess.Popen) -> subprocess.Popen:
    _kernels.append(kernel)
    return kernel


def test_a_disk_that_fills_mid_run_loses_nothing_and_is_recorded_when_space_returns(tmp_path, small_disk):
    home = small_disk / "flyte_nb"
    kernel = _start(tmp_path, home, "freed")
    ctl = tmp_path / "ctl"
    _wait(ctl / "half", kernel)
    _committed(home, 10)
    filler = fill(small_disk)
    (ctl / "full").write_text("")
    _wait(ctl / "second", kernel)
    time.sleep(2.5)  # the writer tries (and fails) several times; before the fix it gave up after ten
    seen = _read_while_full(tmp_path, home)
    assert seen["runs"]["filled"][0] == "running" and seen["first"] == 40_000 and seen["listed"] == ["filled"]
    filler.unlink()
    (ctl / "freed").write_text("")
    out, err = kernel.communicate(timeout=60)
    assert kernel.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1]) == {"total": 20, "phase": "succeeded"}
    assert err.count("is full") == 1 and err.count("recording resumed, nothing was lost") == 1, err
    assert "Traceback" not in err, err
    phase, phases, files = _check_store(home)
    assert phase == "succeeded" and phases == {"succeeded": 21}
    conn = sqlite3.connect(home / DB_NAME)
    assert sorted(conn.execute("SELECT text FROM logs")) == sorted((f"made {i}\n",) for i in range(20))
    conn.close()
    assert files == 20  # one per big output, every one named by its row


def test_a_kernel_that_exits_with_the_disk_full_keeps_what_was_recorded(tmp_path, small_disk):
    home = small_disk / "flyte_nb"
    kernel = _start(tmp_path, home, "second")  # the run ends while the disk is still full
    ctl = tmp_path / "ctl"
    _wait(ctl / "half", kernel)
    _committed(home, 10)
    filler = fill(small_disk)
    (ctl / "full").write_text("")
    out, err = kernel.communicate(timeout=60)
    assert kernel.returncode == 0, err
    assert err.count("is full") == 1 and err.count("still full at exit") == 1, err
    seen = _read_while_full(tmp_path, home)  # no process has the store open: it is read from the file alone
    assert seen["first"] == 40_000 and seen["runs"]["filled"][1] >= 11
    filler.unlink()
    _read_while_full(tmp_path, home)  # with space, the next open marks the dead kernel's run
    phase, phases, files = _check_store(home)
    assert phase == "aborted" and phases == {"succeeded": 10, "cancelled": 1}  # the driver was cut off
    assert files == 10  # the second half's files went with the rows that could not be committed


def test_a_store_on_a_full_disk_can_still_be_read(tmp_path, small_disk):
    """Opening a store nobody has open creates its WAL index, and marking a dead kernel's run writes:
    on a full disk both made reads fail. Here the kernel is killed mid-run, then the disk fills."""
    home = small_disk / "flyte_nb"
    kernel = _start(tmp_path, home, "never")
    (tmp_path / "ctl" / "full").write_text("")  # no pause: the run goes on to wait for "never"
    _wait(tmp_path / "ctl" / "second", kernel)
    _committed(home, 20)
    kernel.kill()
    kernel.communicate(timeout=30)
    conn = sqlite3.connect(home / DB_NAME)  # the last connection to close checkpoints and removes the side files
    conn.execute("SELECT 1 FROM runs").fetchall()
    conn.close()
    assert not (home / (DB_NAME + "-shm")).exists()
    filler = fill(small_disk)
    seen = _read_while_full(tmp_path, home)
    assert seen["runs"] == {"filled": ["running", 21]} and seen["first"] == 40_000 and seen["listed"] == ["filled"]
    filler.unlink()
    assert _read_while_full(tmp_path, home)["runs"] == {"filled": ["aborted", 21]}  # marked once there is space
    phase, phases, files = _check_store(home)
    assert phases == {"succeeded": 20, "cancelled": 1} and files == 20


def test_a_write_that_hits_a_full_disk_says_so_and_leaves_the_store_as_it_was(small_disk):
    from flyte_nb.data.store import Store
    from flyte_nb.errors import StoreError

    store = Store(small_disk / "flyte_nb")
    conn = store.connect()
    with store.writing(conn):
        conn.execute("INSERT INTO runs (name, driver, phase, created_at) VALUES ('kept', 'd', 'succeeded', 1)")
    filler = fill(small_disk)
    try:
        with store.writing(conn):  # SQLite rolls back by itself on SQLITE_FULL: the error must not be masked
            for i in range(100):
                conn.execute("INSERT INTO logs (run, action, text) VALUES (1, ?, ?)", (i, "x" * 100_000))
    except StoreError as error:
        assert "is full" in str(error) and "no transaction" not in str(error), error
    else:
        raise AssertionError("10 MB went onto an 8 MB disk")
    try:
        store.pack(b"y" * 100_000)
    except OSError:
        pass
    assert not value_files(store.home), "a half-written value file was left"
    assert not conn.in_transaction
    filler.unlink()
    with store.writing(conn):
        conn.execute("INSERT INTO runs (name, driver, phase, created_at) VALUES ('after', 'd', 'succeeded', 1)")
    assert [r[0] for r in conn.execute("SELECT name FROM runs ORDER BY id")] == ["kept", "after"]
    conn.close()


CHAOS = """
import asyncio, json, random, sys
from pathlib import Path
import flyte_nb as flyte

ctl = Path(sys.argv[1])
env = flyte.TaskEnvironment("chaos")

@env.task
async def make(x: int, size: int) -> bytes:
    print("made", x, size)
    await asyncio.sleep(0.05)
    return bytes([x % 256]) * size

@env.task
async def main(seed: int) -> int:
    rng = random.Random(seed)
    sizes = [rng.choice([100, 5_000, 40_000]) for _ in range(40)]  # inline values and value files
    return sum(map(len, [b async for b in flyte.map.aio(make, range(40), sizes, concurrency=4)]))

names = []
while not (ctl / "stop").exists():
    run = flyte.with_runcontext(name=f"chaos-{len(names)}").run(main, len(names))
    run.wait(quiet=True)
    names.append(run.name)
print(json.dumps(names), flush=True)
"""


@pytest.mark.parametrize("small_disk", ["32m"], indirect=True)
def test_a_disk_that_fills_and_frees_at_random_moments_loses_nothing(tmp_path, small_disk):
    """Fault injection: the disk fills and frees at seeded random moments while runs record."""
    import random

    from flyte_nb.data.store import Store
    from flyte_nb.server import queries
    from flyte_nb.server.handlers import Reader

    home = small_disk / "flyte_nb"
    ctl = tmp_path / "ctl"
    ctl.mkdir()
    kernel = _kept(subprocess.Popen([sys.executable, str(script(tmp_path, CHAOS)), str(ctl)], env=child_env(home),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    rng = random.Random(18)
    reader = Reader(str(tmp_path), Store(home))
    injections = reads = 0
    deadline = time.monotonic() + 15
    while not (home / DB_NAME).exists():
        assert time.monotonic() < deadline and kernel.poll() is None
        time.sleep(0.05)
    for _ in range(5):
        time.sleep(rng.uniform(0.2, 1.0))
        filler = fill(small_disk)
        injections += 1
        time.sleep(rng.uniform(0.3, 1.5))
        reader.read(queries.list_runs, queries.Paths(str(tmp_path)))  # the Runs panel still reads
        reads += 1
        filler.unlink()
    (ctl / "stop").write_text("")
    out, err = kernel.communicate(timeout=120)
    assert kernel.returncode == 0, err
    names = json.loads(out.strip().splitlines()[-1])
    assert len(names) >= 2 and "Traceback" not in err, err
    full, resumed = err.count("flyte_nb: the disk holding"), err.count("recording resumed, nothing was lost")
    assert full == resumed <= injections and len(err.splitlines()) == full + resumed, err  # no flood
    waited = {name for line in err.splitlines() if " are kept in memory" in line
              for name in line.split("; runs ", 1)[1].split(" are kept")[0].split(", ")}

    conn = sqlite3.connect(home / DB_NAME)
    conn.row_factory = sqlite3.Row
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert {r[0] for r in conn.execute("SELECT name FROM runs")} == set(names)
    values = 0
    for name in names:
        run = conn.execute("SELECT * FROM runs WHERE name = ?", (name,)).fetchone()
        phases = dict(conn.execute("SELECT phase, count(*) FROM actions WHERE run = ? GROUP BY phase", (run["id"],)))
        assert run["phase"] == "succeeded" and phases == {"succeeded": 41}, (name, run["phase"], phases)
        assert json.loads(run["counts"]) == phases and run["actions"] == 41
        logs = {text for (text,) in conn.execute("SELECT text FROM logs WHERE run = ?", (run["id"],))}
        assert len(logs) == 40
        for action in conn.execute("SELECT inputs, outputs FROM actions WHERE run = ? AND parent IS NOT NULL",
                                   (run["id"],)):
            stored = Store(home)
            inputs = pickle.loads(stored.unpack(action["inputs"]))
            assert pickle.loads(stored.unpack(action["outputs"])) == bytes([inputs["x"] % 256]) * inputs["size"]
            assert f"made {inputs['x']} {inputs['size']}\n" in logs
            values += 1
    named = referenced_digests(conn)
    conn.close()
    files = value_files(home)
    assert {f.name for f in files} == named and not [f for f in files if f.name.endswith(".tmp")]
    print(f"\ndisk-full injections: {injections} (the writer hit {full}), reads while full: {reads}, runs: "
          f"{len(names)} ({len(waited)} waited for space), recorded values checked: {values}")
