"""Prefect-style tag throttling: per-run tag limits, every tag of a task binding at once."""

from __future__ import annotations

import asyncio
import statistics
import time

import pytest

import flyte_nb as flyte
from tests.timeline import Gauge, peak

env = flyte.TaskEnvironment("throttle")
gauge = Gauge()


@env.task(tags=["example"])
async def tagged_speaker(name: str) -> str:
    with gauge.running("example", "any"):
        await asyncio.sleep(0.2)
    return name


@env.task
async def untagged_speaker(name: str) -> str:
    with gauge.running("untagged", "any"):
        await asyncio.sleep(0.2)
    return name


@env.task
async def three_speakers() -> list[str]:
    return await asyncio.gather(tagged_speaker("ann"), tagged_speaker("bob"), untagged_speaker("cy"))


def test_throttle_serialises_only_the_tagged_tasks():
    gauge.top.clear()
    start = time.perf_counter()
    run = flyte.with_runcontext(throttle={"example": 1}).run(three_speakers)
    assert run.outputs(timeout=5) == ["ann", "bob", "cy"]
    elapsed = time.perf_counter() - start
    assert gauge.peak_of("example") == 1
    assert gauge.peak_of("any") == 2  # the untagged one ran beside a tagged one
    assert elapsed >= 0.4, "the two tagged speakers ran one after the other"
    tagged = [a for a in run.actions if "example" in a.tags]
    assert len(tagged) == 2 and peak((a.started_at, a.ended_at) for a in tagged) == 1


def test_without_throttle_all_three_run_together():
    gauge.top.clear()
    run = flyte.run(three_speakers)
    run.outputs(timeout=5)
    assert gauge.peak_of("any") == 3


LIMITS = {"group A": 1, "group B": 2, "group C": 1}


@env.task
async def work(label: str) -> str:
    from flyte_nb.engine.context import current_action

    held = current_action.get().tags
    with gauge.running(*held):
        await asyncio.sleep(0.05)
    return label


@env.task
async def nested_groups() -> int:
    calls = []
    with flyte.tags("group A"):
        calls += [work(f"a{i}") for i in range(3)]
        with flyte.tags("group B"):
            calls += [work(f"ab{i}") for i in range(3)]
            with flyte.tags("group C"):
                calls += [work(f"abc{i}") for i in range(3)]
    with flyte.tags("group B"):
        calls += [work(f"b{i}") for i in range(6)]
        with flyte.tags("group C"):
            calls += [work(f"bc{i}") for i in range(3)]
    with flyte.tags("group C"):
        calls += [work(f"c{i}") for i in range(4)]
    calls += [work(f"free{i}") for i in range(4)]
    return len(await asyncio.gather(*calls))


def test_three_nested_tag_groups_are_all_respected_at_every_instant():
    gauge.top.clear()
    gauge.intervals.clear()
    run = flyte.with_runcontext(throttle=LIMITS).run(nested_groups)
    assert run.outputs(timeout=10) == 26
    for tag, limit in LIMITS.items():
        measured = peak((s, e) for label, s, e in gauge.intervals if label == tag)
        recorded = peak((a.started_at, a.ended_at) for a in run.actions if tag in a.tags)
        assert measured == recorded == limit, (tag, measured, recorded)
    assert all(s.holders == 0 and s.waiting == 0 for s in run.statistics())


@env.task(tags=["db"])
async def query(i: int) -> int:
    with gauge.running("db"):
        await asyncio.sleep(0.05)
    return i


@env.task(throttle={"db": 2})
async def declares_its_throttle(n: int) -> list[int]:
    return await asyncio.gather(*(query(i) for i in range(n)))


def test_throttle_declared_on_the_driver_and_overridden_per_run():
    gauge.top.clear()
    flyte.run(declares_its_throttle, 8).outputs(timeout=5)
    assert gauge.peak_of("db") == 2
    gauge.top.clear()
    flyte.with_runcontext(throttle={"db": 1}).run(declares_its_throttle, 8).outputs(timeout=5)
    assert gauge.peak_of("db") == 1


throttled_env = flyte.TaskEnvironment("throttled-env", throttle={"db": 3})


@throttled_env.task
async def env_driver(n: int) -> list[int]:
    return await asyncio.gather(*(query(i) for i in range(n)))


def test_throttle_declared_on_the_environment():
    gauge.top.clear()
    flyte.run(env_driver, 9).outputs(timeout=5)
    assert gauge.peak_of("db") == 3


@env.task(tags=["db"])
async def parent_in_db(n: int) -> list[int]:
    with flyte.tags("db"):
        return await asyncio.gather(*(query(i) for i in range(n)))


@env.task
async def parents(n: int) -> list[list[int]]:
    return await asyncio.gather(*(parent_in_db(n) for _ in range(3)))


def test_a_parent_waiting_on_its_children_lends_them_its_slot():
    """Prefect deadlocked here: parents holding the only slot while their children queue for it."""
    gauge.top.clear()
    run = flyte.with_runcontext(throttle={"db": 1}).run(parents, 4)
    assert run.outputs(timeout=5) == [[0, 1, 2, 3]] * 3
    assert gauge.peak_of("db") == 1


limited_env = flyte.TaskEnvironment("limited", concurrency=2)


@limited_env.task
async def limited_work(i: int) -> int:
    with gauge.running("limited"):
        await asyncio.sleep(0.05)
    return i


@env.task
async def uses_limited_env(n: int) -> list[int]:
    return await asyncio.gather(*(limited_work(i) for i in range(n)))


def test_environment_concurrency_holds_across_concurrent_runs():
    gauge.top.clear()
    runs = [flyte.run(uses_limited_env, 6) for _ in range(3)]
    for run in runs:
        assert run.outputs(timeout=5) == list(range(6))
    assert gauge.peak_of("limited") == 2
    stats = {s.name: s for s in runs[0].statistics()}
    assert stats["env:limited"].capacity == 2


@pytest.mark.parametrize("limit", [1, 2, 5])
def test_freed_slot_wakes_the_next_waiter_at_once(limit):
    """20 × 50 ms through `limit` slots: each waiter starts as a slot frees, not at a later poll.

    Measured as hand-offs (a body's start minus the latest end before it), judged by their median:
    a poller every 100 ms would show ~50 ms; a loaded machine stretches a few, not the median.
    """
    gauge.top.clear()
    gauge.intervals.clear()
    flyte.with_runcontext(throttle={"db": limit}).run(declares_its_throttle, 20).outputs(timeout=30)
    assert gauge.peak_of("db") == limit
    spans = sorted((start, end) for label, start, end in gauge.intervals if label == "db")
    ends = sorted(end for _, end in spans)
    handoffs = [start - max(e for e in ends if e <= start) for start, _ in spans[limit:]]
    assert len(handoffs) == 20 - limit
    assert statistics.median(handoffs) < 0.02, sorted(handoffs)
