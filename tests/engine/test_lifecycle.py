"""Action lifecycle: events, errors keeping their type, retries with backoff, timeouts, abort."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import flyte_nb as flyte
from flyte_nb import Phase

env = flyte.TaskEnvironment("lifecycle")


@env.task
async def double(x: int) -> int:
    await asyncio.sleep(0.01)
    return 2 * x


@env.task
async def one_child() -> int:
    return await double(21)


def test_every_phase_change_is_an_event():
    events = []
    run = flyte.with_runcontext(listeners=[events.append]).run(one_child)
    assert run.outputs(timeout=5) == 42
    kinds = [e.kind for e in events]
    assert kinds[0] is flyte.EventKind.RUN_STARTED and kinds[-1] is flyte.EventKind.RUN_FINISHED
    child = [str(e.phase) for e in events if e.action is not None and e.action.task == "lifecycle.double"]
    assert child == ["queued", "running", "succeeded"]
    assert run.counts["succeeded"] == 2


@env.task(tags=["t"])
async def tagged_double(x: int) -> int:
    return await double(x)


@env.task
async def tagged_root() -> int:
    return await tagged_double(1)


@env.task(tags=["t"])
async def tagged_nap(x: int) -> int:
    await asyncio.sleep(0.05)
    return x


@env.task
async def two_tagged() -> list:
    return list(await asyncio.gather(tagged_nap(1), tagged_nap(2)))


def test_an_action_waits_for_slots_only_when_none_is_free():
    events = []
    run = flyte.with_runcontext(throttle={"t": 1}, listeners=[events.append]).run(two_tagged)
    assert run.outputs(timeout=5) == [1, 2]
    phases = {}
    for e in events:
        if e.action is not None and e.action.task == "lifecycle.tagged_nap" and e.phase is not None:
            phases.setdefault(e.action.number, []).append(str(e.phase))
    first, second = phases.values()
    assert first == ["queued", "running", "succeeded"]  # its slot was free: straight to running
    assert second == ["queued", "waiting", "running", "succeeded"]  # the throttle held it back


@env.task
async def fails(kind: str) -> None:
    await asyncio.sleep(0)
    raise {"value": ValueError, "key": KeyError, "custom": CustomError}[kind](f"bad {kind}")


class CustomError(Exception):
    pass


@env.task
async def calls_failing(kind: str) -> None:
    await fails(kind)


@pytest.mark.parametrize("kind,error", [("value", ValueError), ("key", KeyError), ("custom", CustomError)])
def test_user_errors_keep_their_type(kind, error):
    run = flyte.run(calls_failing, kind)
    with pytest.raises(error, match=f"bad {kind}"):
        run.outputs(timeout=5)
    assert run.phase == "failed"
    failed = [a for a in run.actions if a.phase == Phase.FAILED]
    assert {a.task for a in failed} == {"lifecycle.fails", "lifecycle.calls_failing"}
    assert isinstance(failed[0].error, error)
    assert any("lifecycle.fails" in note for note in getattr(run.error, "__notes__", []))


attempt_times: list[float] = []


@env.task(retries=flyte.RetryStrategy(count=3, backoff=flyte.Backoff(base=0.1, factor=4, cap=0.5)))
async def flaky(succeed_on: int) -> int:
    attempt_times.append(time.perf_counter())
    if len(attempt_times) < succeed_on:
        raise ConnectionError(f"attempt {len(attempt_times)}")
    return len(attempt_times)


def test_retries_follow_the_backoff():
    attempt_times.clear()
    run = flyte.run(flaky, 4)
    assert run.outputs(timeout=5) == 4
    gaps = [b - a for a, b in zip(attempt_times, attempt_times[1:])]
    # 0.1, 0.4, then capped at 0.5 (uncapped: 1.6). A sleep never ends early, so the lower bounds are
    # exact; the upper ones sit half-way to what a wrong factor or a missing cap would give (load-proof).
    for gap, low, high in zip(gaps, [0.1, 0.4, 0.5], [0.35, 0.9, 1.05]):
        assert low <= gap < high, gaps
    root = run.actions[0]
    assert root.attempts == 4
    assert [type(a.error) for a in root.history] == [ConnectionError] * 3


def test_retries_exhausted_raise_the_last_error():
    attempt_times.clear()
    run = flyte.run(flaky, 10)
    with pytest.raises(ConnectionError, match="attempt 4"):
        run.outputs(timeout=5)
    assert run.actions[0].attempts == 4
    assert len(run.actions[0].history) == 4


@env.task(timeout=0.2)
async def sleeps_async(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "done"


sync_progress: list[int] = []


@env.task(timeout="200ms")
def spins_sync(seconds: float) -> str:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        sync_progress.append(1)
    return "done"


@pytest.mark.parametrize("task", [sleeps_async, spins_sync], ids=["async", "sync"])
def test_a_timeout_fires_and_stops_the_attempt(task):
    sync_progress.clear()
    start = time.perf_counter()
    run = flyte.run(task, 5)
    with pytest.raises(flyte.ActionTimeoutError, match="timeout of 0.2s") as caught:
        run.outputs(timeout=5)
    assert isinstance(caught.value, TimeoutError)
    assert time.perf_counter() - start < 2.5  # the body alone would take 5 s
    assert run.actions[0].phase == Phase.TIMED_OUT
    if task is spins_sync:
        time.sleep(0.1)
        done = len(sync_progress)
        time.sleep(0.2)
        assert len(sync_progress) == done, "the interrupted sync body must stop running"


@env.task(timeout=0.1, retries=2)
async def always_slow() -> None:
    await asyncio.sleep(1)


def test_timeouts_are_per_attempt_and_retried():
    run = flyte.run(always_slow)
    with pytest.raises(flyte.ActionTimeoutError):
        run.outputs(timeout=5)
    assert run.actions[0].attempts == 3
    assert 0.3 <= run.duration < 2.5, "three attempts cut at 0.1 s each (unenforced, they would take 3 s)"


@env.task
async def succeeds_before_timeout() -> str:
    return await sleeps_async(0.05)


def test_timeout_does_not_fire_on_fast_attempts():
    assert flyte.run(succeeds_before_timeout).outputs(timeout=5) == "done"


@env.task
async def slow_item(i: int) -> int:
    await asyncio.sleep(0.2)
    return i


@env.task
async def long_item(i: int) -> int:
    await asyncio.sleep(5)
    return i


@env.task
async def big_map(n: int) -> int:
    return sum(1 for _ in flyte.map(slow_item, range(n), concurrency=50))


def test_abort_of_a_1000_item_map_is_prompt_and_leaves_no_slot_held():
    run = flyte.with_runcontext(throttle={"unused": 1}).run(big_map, 1000)
    time.sleep(0.5)
    assert run.phase == "running"
    start = time.perf_counter()
    run.abort(reason="test")
    assert time.perf_counter() - start < 2  # 950 items were still to come
    assert run.phase == "aborted"
    with pytest.raises(flyte.RunAbortedError, match="test"):
        run.outputs()
    assert all(s.holders == 0 and s.waiting == 0 for s in run.statistics()), run.statistics()
    phases = {str(a.phase) for a in run.actions}
    assert phases <= {"succeeded", "cancelled"}
    assert run.counts["cancelled"] >= 50
    assert len(run.actions) < 1000  # the map stopped pulling inputs


@env.task
def sync_sleeper(i: int) -> int:
    time.sleep(0.3)
    return i


@env.task
def sync_driver_map(n: int) -> int:
    return len(list(flyte.map(sync_sleeper, range(n), concurrency=10)))


def test_abort_of_a_sync_driver_stops_its_children():
    run = flyte.run(sync_driver_map, 100)
    time.sleep(0.4)
    run.abort()
    assert run.phase == "aborted"
    time.sleep(0.4)
    running = [a for a in run.actions if a.phase == Phase.RUNNING]
    assert running == []
    assert run.counts["succeeded"] <= 20


def test_wait_with_timeout_and_run_returning_at_once():
    run = flyte.run(slow_item, 7)
    assert not run.done(), "run() returned before its 0.2 s action could finish"
    with pytest.raises(TimeoutError, match="still running"):
        run.wait(timeout=0.05)
    run.wait()
    assert run.done() and run.outputs() == 7


def test_await_run_from_another_loop():
    async def notebook_cell():
        return await flyte.run(double, 4)

    assert asyncio.run(notebook_cell()) == 8


def test_engine_runs_on_its_own_daemon_thread():
    seen = {}

    @env.task
    async def where() -> str:
        seen["thread"] = threading.current_thread()
        return "ok"

    flyte.run(where).outputs(timeout=5)
    assert seen["thread"] is not threading.main_thread() and seen["thread"].daemon


def test_run_names_are_unique_and_readable():
    names = {flyte.run(double, i).name for i in range(20)}
    assert len(names) == 20
    assert all(name.count("-") == 2 for name in names)
    first = flyte.with_runcontext(name="nightly").run(double, 1)
    second = flyte.with_runcontext(name="nightly").run(double, 1)
    assert (first.name, second.name) == ("nightly", "nightly-2")


@env.task
async def leaves_orphans() -> str:
    for i in range(5):
        asyncio.ensure_future(long_item(i))  # never awaited
    await asyncio.sleep(0.01)
    return "returned early"


def test_a_run_ends_with_its_driver_and_cancels_orphaned_actions():
    run = flyte.run(leaves_orphans)
    assert run.outputs(timeout=5) == "returned early"
    assert run.duration < 2.5, "the run ended with its driver, not after its 5 s orphans"
    orphans = [a for a in run.actions if a.parent is not None]
    assert len(orphans) == 5 and all(a.phase == Phase.CANCELLED for a in orphans)


def test_wait_inside_a_task_is_refused_with_advice():
    @env.task
    async def waits_on_another_run() -> None:
        flyte.run(double, 1).wait()

    with pytest.raises(flyte.DeadlockError, match="await run"):
        flyte.run(waits_on_another_run).outputs(timeout=5)


def test_awaiting_another_run_inside_a_task_works():
    @env.task
    async def awaits_another_run() -> int:
        return await flyte.run(double, 5)

    assert flyte.run(awaits_another_run).outputs(timeout=5) == 10


def test_user_traceback_shows_the_task_not_the_engine():
    from flyte_nb.errors import user_traceback

    run = flyte.run(calls_failing, "value")
    run.wait()
    text = user_traceback(run.error)
    assert 'raise {"value": ValueError' in text and "ValueError: bad value" in text
    assert "flyte_nb/engine" not in text and "asyncio" not in text


def test_user_traceback_never_parses_source(monkeypatch):
    """It runs on engine threads; ast.parse there races the cell's own parse on CPython < 3.11.8."""
    import ast

    from flyte_nb.errors import user_traceback

    run = flyte.run(calls_failing, "value")
    run.wait()

    parsed: list[str] = []
    monkeypatch.setattr(ast, "parse", lambda source, *args, **kwargs: parsed.append(source))
    text = user_traceback(run.error)  # (traceback swallows errors from ast.parse: count the calls)
    monkeypatch.undo()  # pytest itself parses when it reports a failure
    assert "ValueError: bad value" in text and parsed == []
