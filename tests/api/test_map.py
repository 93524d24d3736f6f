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
