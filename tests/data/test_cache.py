"""Caching as in Flyte 2, and retry_failed: hits skip execution, anything that changes the key misses."""

from __future__ import annotations

import asyncio
import itertools
import linecache
import threading

import pytest

import flyte_nb as flyte
from flyte_nb import Phase

from .conftest import run_child
from .conftest import stored as stored_by_name
from .store_tasks import cached_square, executions, pipeline

env = flyte.TaskEnvironment("cache_tests")
calls: list[tuple] = []


@env.task(cache="auto")
async def scaled(x: int, factor: int = 2) -> int:
    calls.append(("scaled", x, factor))
    return x * factor


@env.task(cache=flyte.Cache(version="v1", ignored_inputs=("verbose",)))
async def tolerant(x: int, verbose: bool = False) -> int:
    calls.append(("tolerant", x, verbose))
    return x + 1


@env.task
async def drive(task: str, *calls_: dict) -> list:
    target = {"scaled": scaled, "tolerant": tolerant}[task]
    return [await target(**kwargs) for kwargs in calls_]


def phases(run: flyte.Run, task: str) -> list[str]:
    return [str(a.phase) for a in run.actions if a.task == task]


def stored(run: flyte.Run) -> flyte.StoredRun:
    return stored_by_name(run.name)


def run_ok(task, *args, **context):
    run = flyte.with_runcontext(**context).run(task, *args) if context else flyte.run(task, *args)
    run.outputs(timeout=30)
    return run


@pytest.fixture(autouse=True)
def _reset():
    calls.clear()


def test_a_hit_is_phase_cached_and_does_not_execute():
    first = run_ok(drive, "scaled", {"x": 3}, {"x": 4})
    assert phases(first, "cache_tests.scaled") == ["succeeded", "succeeded"]
    second = run_ok(drive, "scaled", {"x": 3}, {"x": 5})
    assert second.outputs() == [6, 10]
    assert phases(second, "cache_tests.scaled") == ["cached", "succeeded"]
    assert calls == [("scaled", 3, 2), ("scaled", 4, 2), ("scaled", 5, 2)]
    hit = next(a for a in second.actions if a.phase is Phase.CACHED)
    assert hit.attempts == 0 and hit.ended_at >= hit.started_at  # no attempt: the body never ran
    record = stored(second).action(hit.name)  # the record of a hit keeps its inputs, output and key
    assert record.phase is Phase.CACHED and record.inputs() == {"x": 3, "factor": 2} and record.output() == 6
    assert record.cache_key == stored(first).action("a1").cache_key


def test_the_same_inputs_however_passed_are_one_key():
    run_ok(drive, "scaled", {"x": 3})
    again = run_ok(drive, "scaled", {"x": 3, "factor": 2})  # default spelled out, by keyword
    assert phases(again, "cache_tests.scaled") == ["cached"]
    other = run_ok(drive, "scaled", {"x": 3, "factor": 3})
    assert phases(other, "cache_tests.scaled") == ["succeeded"] and other.outputs() == [9]


def test_ignored_inputs_and_version_are_honoured():
    run_ok(drive, "tolerant", {"x": 1, "verbose": True})
    again = run_ok(drive, "tolerant", {"x": 1, "verbose": False})
    assert phases(again, "cache_tests.tolerant") == ["cached"] and again.outputs() == [2]
    assert calls == [("tolerant", 1, True)]


CELL = """
async def churn(x: int) -> int:
    calls.append(("churn", x))
    return x + {delta}
"""


def cell_task(text: str, register: str | None = None, **options) -> flyte.TaskTemplate:
    """A task as a notebook cell defines it: ``register`` puts the text in linecache like IPython does."""
    namespace = {"calls": calls}
    filename = register or "<not-a-file>"
    if register:
        linecache.cache[register] = (len(text), None, text.splitlines(True), register)
    exec(compile(text, filename, "exec"), namespace)
    return env.task(**{"cache": "auto", **options})(namespace["churn"])


@env.task
async def churn_driver(task: flyte.TaskTemplate, x: int) -> int:
    return await task(x)


@pytest.mark.parametrize("how", ["source", "linecache", "bytecode"])
def test_a_changed_cell_body_invalidates_the_key(how):
    def define(delta: int, cell: int) -> flyte.TaskTemplate:
        source = CELL.format(delta=delta)
        if how == "source":  # the %%task magic hands the cell text over
            return cell_task(source, source=source)
        if how == "linecache":  # a plain cell: inspect.getsource finds it the way IPython registers it
            return cell_task(source, register=f"<ipython-input-{cell}-{delta}>")
        return cell_task(source)  # no source anywhere: the bytecode identifies it

    one = define(1, 1)
    assert run_ok(churn_driver, one, 5).outputs() == 6
    assert phases(run_ok(churn_driver, define(1, 2), 5), "cache_tests.churn") == ["cached"]  # same body re-run
    changed = run_ok(churn_driver, define(2, 3), 5)
    assert phases(changed, "cache_tests.churn") == ["succeeded"] and changed.outputs() == 7
    back = run_ok(churn_driver, define(1, 4), 5)  # the old body's entry is still there
    assert phases(back, "cache_tests.churn") == ["cached"] and back.outputs() == 6
    assert calls == [("churn", 5), ("churn", 5)]


def test_a_version_keeps_the_key_across_edits_and_salt_changes_it():
    v1 = cell_task(CELL.format(delta=1), source=CELL.format(delta=1), cache=flyte.Cache(version="v1"))
    edited = cell_task(CELL.format(delta=100), source=CELL.format(delta=100), cache=flyte.Cache(version="v1"))
    assert run_ok(churn_driver, v1, 1).outputs() == 2
    assert run_ok(churn_driver, edited, 1).outputs() == 2  # the user vouched: same version, same result
    salted = cell_task(CELL.format(delta=1), source=CELL.format(delta=1), cache=flyte.Cache(version="v1", salt="s"))
    assert phases(run_ok(churn_driver, salted, 1), "cache_tests.churn") == ["succeeded"]
    bumped = cell_task(CELL.format(delta=100), source=CELL.format(delta=100), cache=flyte.Cache(version="v2"))
    assert run_ok(churn_driver, bumped, 1).outputs() == 101
    assert len(calls) == 3


counter = itertools.count()


@env.task(cache="auto")
async def ticket(label: str) -> int:
    return next(counter)


@env.task
async def take(label: str) -> int:
    return await ticket(label)


def test_overwrite_cache_executes_and_replaces_the_entry():
    first = run_ok(take, "a").outputs()
    assert run_ok(take, "a").outputs() == first
    fresh = run_ok(take, "a", overwrite_cache=True)
    assert phases(fresh, "cache_tests.ticket") == ["succeeded"] and fresh.outputs() != first
    assert run_ok(take, "a").outputs() == fresh.outputs()  # the entry was replaced


def test_disable_run_cache_neither_reads_nor_writes():
    first = run_ok(take, "b").outputs()
    off = run_ok(take, "b", disable_run_cache=True)
    assert phases(off, "cache_tests.ticket") == ["succeeded"] and off.outputs() != first
    assert run_ok(take, "b").outputs() == first  # not replaced
    new = run_ok(take, "c", disable_run_cache=True).outputs()
    assert run_ok(take, "c").outputs() != new  # not written


cached_env = flyte.TaskEnvironment("cached_env", cache="auto")


@cached_env.task
async def env_cached(x: int) -> int:
    calls.append(("env_cached", x))
    return -x


@cached_env.task(cache="disable")
async def opted_out(x: int) -> int:
    calls.append(("opted_out", x))
    return x


@env.task
async def env_driver(x: int) -> list[int]:
    return [await env_cached(x), await opted_out(x)]


def test_an_environment_cache_applies_to_its_tasks_unless_they_opt_out():
    run_ok(env_driver, 1)
    run = run_ok(env_driver, 1)
    assert phases(run, "cached_env.env_cached") == ["cached"]
    assert phases(run, "cached_env.opted_out") == ["succeeded"]
    assert calls == [("env_cached", 1), ("opted_out", 1), ("opted_out", 1)]


@env.task(cache="auto")
async def fragile(x: int) -> int:
    calls.append(("fragile", x))
    if len(calls) == 1:
        raise RuntimeError("first call fails")
    return x


@env.task(cache="auto")
async def lock_maker(x: int) -> threading.Lock:
    calls.append(("lock_maker", x))
    return threading.Lock()


@env.task
async def use(task: str, x: int) -> object:
    return await {"fragile": fragile, "lock": lock_maker}[task](x)


def test_failures_are_not_cached():
    with pytest.raises(RuntimeError):
        run_ok(use, "fragile", 1)
    assert run_ok(use, "fragile", 1).outputs() == 1
    assert run_ok(use, "fragile", 1).outputs() == 1
    assert calls == [("fragile", 1), ("fragile", 1)]


def test_an_unpicklable_output_is_neither_cached_nor_fatal():
    run = run_ok(use, "lock", 1)
    assert isinstance(run.outputs(), type(threading.Lock()))
    run_ok(use, "lock", 1)
    assert calls == [("lock_maker", 1), ("lock_maker", 1)]
    record = stored(run)
    with pytest.raises(flyte.StoreError, match="output of action a1 was not recorded .*output not recorded: "
                                               "TypeError: cannot pickle"):
        record.action("a1").output()
    with pytest.raises(flyte.StoreError, match="not recorded"):
        record.outputs()
    assert record.phase == "succeeded" and record.action("a1").inputs() == {"x": 1}


# ------------------------------------------------------------------ retry_failed
def test_retry_failed_runs_only_what_failed(home):
    (home / "fail-2").write_text("")
    failed = flyte.run(pipeline, 4)
    with pytest.raises(ValueError, match="item 2 is bad"):
        failed.outputs(timeout=30)
    (home / "fail-2").unlink()
    before = len(executions())
    retry = failed.retry_failed()
    assert retry.outputs(timeout=30) == [100, 102, 106, 112]
    assert executions()[before:] == ["maybe_fail 2"]
    assert phases(retry, "store_tests.maybe_fail") == ["cached", "cached", "succeeded", "cached"]
    assert phases(retry, "store_tests.cached_square") == ["cached"] * 4
    assert retry.name == f"{failed.name}-retry" and stored(retry).retry_of == failed.name
    assert flyte.get_run(retry.name) is retry and flyte.runs(limit=1)[0] is retry
    again = retry.retry_failed()  # nothing failed: everything comes from the store, the driver too
    assert again.outputs(timeout=30) == [100, 102, 106, 112] and again.name == f"{failed.name}-retry-2"
    assert {str(a.phase) for a in again.actions} == {"cached"}


def test_retry_failed_of_a_running_run_is_refused():
    from .store_tasks import slow_map

    running = flyte.run(slow_map, 2, 0)
    try:
        with pytest.raises(flyte.ConfigurationError, match="is still (queued|running); wait for it or abort it"):
            running.retry_failed()
    finally:
        running.abort()


def test_retry_failed_after_a_restart(tmp_path, home):
    code = """
import json
import flyte_nb as flyte
from tests.data.store_tasks import home, pipeline
(home() / "fail-0").write_text("")
(home() / "fail-3").write_text("")
run = flyte.run(pipeline, 5)
try:
    run.outputs()
except ValueError:
    pass
print(json.dumps(run.name))
"""
    name = run_child(tmp_path, home, code)
    for marker in ("fail-0", "fail-3"):
        (home / marker).unlink()
    record = flyte.get_run(name)
    assert isinstance(record, flyte.StoredRun) and record.phase == "failed"
    with pytest.raises(flyte.ConfigurationError, match="was driven by task store_tests.pipeline"):
        record.retry_failed(cached_square)
    before = len(executions())
    retry = record.retry_failed(pipeline)  # the driver, as the restarted kernel defines it again
    assert retry.outputs(timeout=30) == [100, 102, 106, 112, 120]
    assert sorted(executions()[before:]) == ["maybe_fail 0", "maybe_fail 3"]  # nothing else ran again
    assert stored(retry).retry_of == name


def test_retry_failed_of_a_driver_this_kernel_does_not_know_asks_for_it(tmp_path, home):
    name = run_child(tmp_path, home, """
import json, flyte_nb as flyte
env = flyte.TaskEnvironment("cell")
@env.task
async def notebook_driver(x: int) -> int:
    raise KeyError(x)
run = flyte.run(notebook_driver, 1)
run.wait(quiet=True)
print(json.dumps(run.name))
""")
    with pytest.raises(flyte.ConfigurationError,
                       match=r"made by another kernel: pass its driver, run.retry_failed\(notebook_driver\)"):
        flyte.get_run(name).retry_failed()


def test_cache_entries_written_by_another_kernel_are_hits(tmp_path, home):
    run_child(tmp_path, home, """
import json, flyte_nb as flyte
from tests.data.store_tasks import pipeline
print(json.dumps(flyte.run(pipeline, 3).outputs()))
""")
    before = len(executions())
    run = run_ok(pipeline, 3)
    assert phases(run, "store_tests.cached_square") == ["cached"] * 3
    assert [e for e in executions()[before:] if e.startswith("cached_square")] == []


def test_a_map_of_cached_tasks_hits_within_one_run():
    @env.task
    async def twice(n: int) -> list[int]:
        first = [await cached_square(i) for i in range(n)]
        second = await asyncio.gather(*(cached_square(i) for i in range(n)))
        return first + list(second)

    run = run_ok(twice, 3)
    assert run.outputs() == [0, 1, 4] * 2
    assert phases(run, "store_tests.cached_square") == ["succeeded"] * 3 + ["cached"] * 3


def test_retry_failed_with_a_corrected_driver_and_a_name(home):
    (home / "fail-1").write_text("")
    failed = flyte.run(pipeline, 2)
    with pytest.raises(ValueError):
        failed.outputs(timeout=30)
    (home / "fail-1").unlink()
    with pytest.raises(flyte.ConfigurationError, match="was driven by task store_tests.pipeline"):
        failed.retry_failed(cached_square)
    retry = failed.retry_failed(pipeline, name="second-try")
    assert retry.name == "second-try" and retry.outputs(timeout=30) == [100, 102]
