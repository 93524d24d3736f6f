"""flyte_nb.map: groups, order, streaming, return_exceptions, laziness, early exit."""

from __future__ import annotations

import asyncio
import time

import pytest

import flyte_nb as flyte

env = flyte.TaskEnvironment("maps")


@env.task
async def maybe_fail(i: int) -> int:
    await asyncio.sleep(0.001 * (i % 5))
    if i % 3 == 0:
        raise ValueError(f"item {i}")
    return i


@env.task
async def collect(n: int, return_exceptions: bool) -> list:
    return list(flyte.map(maybe_fail, range(n), concurrency=4, return_exceptions=return_exceptions))


def test_return_exceptions_true_returns_errors_in_place():
    results = flyte.run(collect, 10, True).outputs(timeout=5)
    assert [r if isinstance(r, int) else type(r).__name__ for r in results] == [
        "ValueError", 1, 2, "ValueError", 4, 5, "ValueError", 7, 8, "ValueError"]
    assert str(results[3]) == "item 3"


def test_return_exceptions_false_raises_the_first_error():
    run = flyte.run(collect, 10, False)
    with pytest.raises(ValueError, match="item 0"):
        run.outputs(timeout=5)
    assert all(s.holders == 0 for s in run.statistics())


@env.task
async def jittery(i: int) -> int:
    await asyncio.sleep(0.05 if i % 2 == 0 else 0.001)
    return i


@env.task
async def stream(n: int, ordered: bool) -> list[int]:
    return [r async for r in flyte.map.aio(jittery, range(n), concurrency=n, ordered=ordered)]


def test_ordered_by_default_and_streamed_in_completion_order_on_request():
    assert flyte.run(stream, 6, True).outputs(timeout=5) == [0, 1, 2, 3, 4, 5]
    unordered = flyte.run(stream, 6, False).outputs(timeout=5)
    assert sorted(unordered) == [0, 1, 2, 3, 4, 5]
    assert set(unordered[:3]) == {1, 3, 5}  # the fast ones first


pulled: list[int] = []


def counting_inputs(n: int):
    for i in range(n):
        pulled.append(i)
        yield i


@env.task
async def echo(i: int) -> int:
    return i


@env.task
async def slow_consumer(n: int) -> int:
    seen = 0
    async for _ in flyte.map.aio(echo, counting_inputs(n), concurrency=5):
        seen += 1
        if seen == 10:
            await asyncio.sleep(0.05)
            high_water = len(pulled)
            assert high_water <= 10 + 64, high_water  # bounded window, not all n
    return seen


def test_inputs_are_pulled_lazily():
    pulled.clear()
    assert flyte.run(slow_consumer, 10_000).outputs(timeout=30) == 10_000
    assert len(pulled) == 10_000


@env.task
async def early_exit() -> int:
    async for result in flyte.map.aio(jittery, counting_inputs(1000), concurrency=10):
        if result == 3:
            break
    await asyncio.sleep(0.05)
    return len(pulled)


def test_breaking_out_of_a_map_cancels_what_is_in_flight():
    pulled.clear()
    run = flyte.run(early_exit)
    assert run.outputs(timeout=5) < 100
    assert all(s.holders == 0 for s in run.statistics())
    assert run.counts["running"] == 0 and run.counts["queued"] == 0


@env.task
async def add(a: int, b: int) -> int:
    return a + b


@env.task
async def groups() -> tuple:
    first = list(flyte.map(add, range(3), [10, 20, 30]))
    second = list(flyte.map(add, range(2), range(2), group_name="pairs"))
    third = list(flyte.map(add, range(2), range(2), group_name="pairs"))
    with flyte.group("manual"):
        manual = await asyncio.gather(add(1, 1), add(2, 2))
    return first, second, third, manual


def test_each_map_is_a_named_group():
    run = flyte.run(groups)
    assert run.outputs(timeout=5) == ([10, 21, 32], [0, 2], [0, 2], [2, 4])
    assert {name: (g.total, g.finished) for name, g in run.groups.items()} == {
        "add": (3, 3), "pairs": (2, 2), "pairs#2": (2, 2), "manual": (None, 2)}
    assert {a.group_name for a in run.actions if a.parent is not None} == {"add", "pairs", "pairs#2", "manual"}
    assert {s.name for s in run.statistics()} >= {"map:add", "map:pairs", "map:pairs#2"}


@env.task
def sync_square(i: int) -> int:
    return i * i


def test_map_outside_a_run_is_a_plain_map():
    assert list(flyte.map(sync_square, range(4))) == [0, 1, 4, 9]
    assert list(flyte.map(echo, range(4), concurrency=2)) == [0, 1, 2, 3]

    async def cell():
        return [r async for r in flyte.map.aio(echo, range(3))]

    assert asyncio.run(cell()) == [0, 1, 2]


@env.task
async def nested_maps(n: int) -> list[int]:
    async def inner(i: int) -> int:
        return sum(flyte.map(sync_square, range(i)))  # sync map of a sync task in async code

    return await asyncio.gather(*(inner(i) for i in range(n)))


def test_sync_map_inside_plain_coroutines_of_an_async_task_works():
    assert flyte.run(nested_maps, 4).outputs(timeout=5) == [0, 0, 1, 5]


@env.task
async def sync_map_in_async_task(n: int) -> int:
    return sum(flyte.map(sync_square, range(n), concurrency=4))


def test_sync_map_directly_in_an_async_task_works():
    start = time.perf_counter()
    assert flyte.run(sync_map_in_async_task, 100).outputs(timeout=10) == sum(i * i for i in range(100))
    assert time.perf_counter() - start < 5


# ------------------------------------------------- map from a sync task body (a worker thread)
@env.task
def sync_collect(n: int, return_exceptions: bool) -> list:
    return list(flyte.map(maybe_fail, range(n), concurrency=4, return_exceptions=return_exceptions))


@env.task
def sync_ordered(n: int) -> list[int]:
    return list(flyte.map(jittery, range(n), concurrency=n))


def test_a_sync_parent_gets_results_in_input_order_with_errors_in_place():
    assert flyte.run(sync_ordered, 8).outputs(timeout=10) == list(range(8))  # the odd ones finish first
    results = flyte.run(sync_collect, 10, True).outputs(timeout=10)
    assert [r if isinstance(r, int) else type(r).__name__ for r in results] == [
        "ValueError", 1, 2, "ValueError", 4, 5, "ValueError", 7, 8, "ValueError"]


@env.task
async def slow_unless_failing(i: int) -> int:
    if i < 0:
        raise ValueError(f"item {i}")  # fails at once, before the items ahead of it are done
    await asyncio.sleep(0.05)
    return i


@env.task
def sync_until_error() -> list:
    seen = []
    try:
        for result in flyte.map(slow_unless_failing, [1, 2, 3, -4, 5, -6], concurrency=6, return_exceptions=False):
            seen.append(result)
    except ValueError as error:
        seen.append(str(error))
    return seen


def test_a_sync_parent_sees_the_results_before_the_first_error_then_the_error():
    run = flyte.run(sync_until_error)
    assert run.outputs(timeout=10) == [1, 2, 3, "item -4"]
    assert all(s.holders == 0 for s in run.statistics())


@env.task
def sync_slow_consumer(n: int) -> list[int]:
    seen, high_water = 0, []
    for _ in flyte.map(echo, counting_inputs(n), concurrency=5):
        seen += 1
        if seen in (10, n // 2):
            time.sleep(0.05)  # the engine could run far ahead meanwhile, if nothing bounded it
            high_water.append(len(pulled) - seen)
    return [seen, *high_water]


def test_a_sync_parent_pulls_inputs_lazily():
    pulled.clear()
    seen, *ahead = flyte.run(sync_slow_consumer, 5_000).outputs(timeout=60)
    assert seen == 5_000 and len(pulled) == 5_000
    assert max(ahead) <= 2 * 64 + 5, ahead  # a window delivered, a window in flight: O(concurrency), not O(n)


@env.task
def sync_early_exit() -> int:
    for result in flyte.map(jittery, counting_inputs(1000), concurrency=10):
        if result == 3:
            break
    time.sleep(0.2)
    return len(pulled)


def test_a_sync_parent_leaving_a_map_early_cancels_what_is_in_flight():
    pulled.clear()
    run = flyte.run(sync_early_exit)
    assert run.outputs(timeout=10) < 100
    children = [a for a in run.actions if a.parent is not None]
    assert {str(a.phase) for a in children} <= {"succeeded", "cancelled"}
    assert sum(str(a.phase) == "cancelled" for a in children) >= 1
    assert all(s.holders == 0 for s in run.statistics())


cancelled_children: list[int] = []


@env.task
async def forever(i: int) -> int:
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        cancelled_children.append(i)
        raise
    return i


@env.task(timeout=0.5)
def sync_parent_times_out(n: int) -> int:
    return len(list(flyte.map(forever, range(n), concurrency=4)))


@env.task
async def outer_of_timeout() -> str:
    try:
        await sync_parent_times_out.aio(20)
    except flyte.ActionTimeoutError:
        await asyncio.sleep(0.2)  # the map's cancellation lands, while this run goes on
        return f"timed out, {len(cancelled_children)} children cancelled"
    return "finished?"


def test_a_sync_parent_that_times_out_in_a_map_cancels_its_children():
    cancelled_children.clear()
    start = time.perf_counter()
    run = flyte.run(outer_of_timeout)
    assert run.outputs(timeout=30) == "timed out, 4 children cancelled"
    assert time.perf_counter() - start < 10  # not the children's 60 s
    children = [a for a in run.actions if a.task == forever.name]
    assert len(children) == 4  # the window of a concurrency-4 map: nothing more was started
    assert {str(a.phase) for a in children} == {"cancelled"}
    assert all(s.holders == 0 for s in run.statistics())


@env.task
def sync_parent_forever() -> int:
    return len(list(flyte.map(forever, range(100), concurrency=3)))


def test_aborting_a_run_cancels_a_sync_parents_map():
    run = flyte.run(sync_parent_forever)
    deadline = time.perf_counter() + 10
    while run.counts["running"] < 4 and time.perf_counter() < deadline:  # the parent and its 3 children
        time.sleep(0.01)
    run.abort(wait=10)
    assert run.phase == "aborted"
    assert {str(a.phase) for a in run.actions} == {"cancelled"}
    assert all(s.holders == 0 for s in run.statistics())


@env.task
def sync_maps_in_groups() -> tuple:
    squares = list(flyte.map(sync_square, range(4), concurrency=2))  # sync children, on worker threads
    pairs = list(flyte.map(add, range(3), range(3), group_name="adds"))
    return squares, pairs


def test_sync_parent_maps_are_named_groups_and_may_map_sync_children():
    run = flyte.run(sync_maps_in_groups)
    assert run.outputs(timeout=10) == ([0, 1, 4, 9], [0, 2, 4])
    assert {name: (g.total, g.finished) for name, g in run.groups.items()} == {
        "sync_square": (4, 4), "adds": (3, 3)}
    assert run.peak_concurrency(sync_square) <= 2


@env.task
async def maps_sync_inside(i: int) -> int:
    return sum(flyte.map(sync_square, range(i)))  # this child's body waits on a sync map


@env.task
async def map_of_children_that_map() -> list[int]:
    return [r async for r in flyte.map.aio(maps_sync_inside, range(5), concurrency=3)]


def test_children_of_a_map_may_themselves_wait_on_a_sync_map():
    assert flyte.run(map_of_children_that_map).outputs(timeout=10) == [0, 0, 1, 5, 14]


def test_map_aio_outside_a_run_may_be_made_before_its_loop_runs():
    results = flyte.map.aio(echo, range(3), concurrency=2)  # made in plain sync code ...

    async def cell():
        return [r async for r in results]  # ... iterated on a loop started later

    assert asyncio.run(cell()) == [0, 1, 2]
