"""Rates wherever a concurrency limit goes: throttle values, TaskEnvironment(rate=), map(rate=).

Measured in real time from the actions' recorded start times.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

import flyte_nb as flyte
from flyte_nb.engine.action import Phase
from flyte_nb.notebook.widget_state import snapshot
from tests.engine.test_rates import worst_window
from tests.timeline import peak

env = flyte.TaskEnvironment("rates")
RECORDING = 0.01  # a start is stamped a few µs after its grant; a loaded machine may stretch that


@env.task(tags=["llm"])
async def ask(i: int) -> int:
    return i


@env.task(tags=["llm"])
async def slow_ask(i: int) -> int:
    await asyncio.sleep(0.5 - 0.1 * (i % 3))  # started 0.1 s apart, each three end together
    return i


@env.task
async def fan(n: int) -> list[int]:
    return list(await asyncio.gather(*(ask(i) for i in range(n))))


@env.task
async def slow_fan(n: int) -> list[int]:
    return list(await asyncio.gather(*(slow_ask(i) for i in range(n))))


def _leaves(run: flyte.Run, task: str) -> list[flyte.Action]:
    return [a for a in run.actions if a.task == task]


def _reasons() -> tuple[list[str], object]:
    seen: list[str] = []

    def listen(event: flyte.Event) -> None:
        if event.action is not None and event.phase == Phase.WAITING:
            seen.append(event.action.reason)

    return seen, listen


def test_sixty_actions_at_ten_a_second():
    seen, listen = _reasons()
    run = flyte.with_runcontext(throttle={"llm": flyte.Rate(10, per="1s")}, listeners=[listen]).run(fan, 60)
    assert run.outputs(timeout=30) == list(range(60))
    leaves = _leaves(run, "rates.ask")
    starts = [a.started_at for a in leaves]
    assert worst_window(starts, 10, 1, RECORDING) <= 0, "more than burst + 10·t started in some window of t s"
    span = max(a.ended_at for a in leaves) - min(starts)
    assert 5.9 - 0.005 <= span <= 6.5, f"60 starts at 10/s take 5.9 s, took {span:.3f}"
    assert "waiting for rate llm" in seen
    stats = {s.name: s for s in run.statistics()}
    assert stats["rate:llm"].rate == 10 and stats["rate:llm"].waiting == 0
    view = json.loads(json.dumps(snapshot(run.state)))  # what the live widget draws
    (pool,) = [p for p in view["pools"] if p["name"] == "rate:llm"]
    assert pool["capacity"] == 10 and pool["rate"] == 10


def test_rate_and_concurrency_on_one_tag_both_hold():
    seen, listen = _reasons()
    throttle = {"llm": [3, flyte.Rate(10, per="1s")]}
    run = flyte.with_runcontext(throttle=throttle, listeners=[listen]).run(slow_fan, 24)
    assert run.outputs(timeout=30) == list(range(24))
    leaves = _leaves(run, "rates.slow_ask")
    assert peak((a.started_at, a.ended_at) for a in leaves) == 3, "never more than 3 at once (and 3 reached)"
    # three slots come free at once: the rate (taken after the slots) still spaces the starts
    assert worst_window([a.started_at for a in leaves], 10, 1, RECORDING) <= 0
    assert {"waiting for tag llm", "waiting for rate llm"} <= set(seen)


rated = flyte.TaskEnvironment("rated-env", rate=flyte.Rate(20, per="1s"))


@rated.task
async def ping(i: int) -> int:
    return i


@rated.task
async def pings(n: int) -> list[int]:
    return list(await asyncio.gather(*(ping(i) for i in range(n))))


def test_environment_rate_is_one_budget_for_every_run():
    runs = [flyte.run(pings, 15), flyte.run(pings, 15)]
    starts = []
    for run in runs:
        assert run.outputs(timeout=30) == list(range(15))
        starts += [a.started_at for a in run.actions]  # the drivers are actions of the environment too
    assert len(starts) == 32
    assert worst_window(starts, 20, 1, RECORDING) <= 0, "two runs together exceeded the environment's rate"
    assert max(starts) - min(starts) >= 31 / 20 - 0.005


@env.task
async def mapped(n: int) -> list[int]:
    return list(flyte.map(ask, range(n), rate=flyte.Rate(25, per="1s")))


def test_map_rate():
    run = flyte.run(mapped, 30)
    assert run.outputs(timeout=30) == list(range(30))
    starts = [a.started_at for a in _leaves(run, "rates.ask")]
    assert worst_window(starts, 25, 1, RECORDING) <= 0
    assert max(starts) - min(starts) >= 29 / 25 - 0.005
    assert any(s.name.startswith("rate:map.ask") for s in run.statistics())


def test_bad_rate_values_say_what_to_do():
    with pytest.raises(flyte.ConfigurationError, match="whole number >= 1, got '10/s' \\(or a flyte_nb.Rate"):
        flyte.with_runcontext(throttle={"llm": "10/s"})
    with pytest.raises(flyte.ConfigurationError, match="at most one whole number"):
        flyte.with_runcontext(throttle={"llm": [2, 3]})
    with pytest.raises(flyte.ConfigurationError, match="rate must be a flyte_nb.Rate"):
        flyte.TaskEnvironment("bad-rate", rate=10)
    with pytest.raises(flyte.ConfigurationError, match="rate must be a flyte_nb.Rate"):
        list(flyte.map(ask, range(3), rate="fast"))


retuned = flyte.TaskEnvironment("retuned-env", rate=flyte.Rate(2, per="1s"))


@retuned.task
async def tick(i: int) -> int:
    return i


@env.task
async def ticks(n: int) -> list[int]:
    return list(await asyncio.gather(*(tick(i) for i in range(n))))


def test_a_rate_changed_while_a_run_is_live_applies_to_the_next_grant():
    run = flyte.run(ticks, 12)  # at 2/s: 5.5 s
    time.sleep(1.2)
    started_before = sum(a.started_at is not None for a in run.actions if a.task == "retuned-env.tick")
    changed = time.time()
    retuned.rate_pool.set_rate(flyte.Rate(50, per="1s"))  # from this (the notebook's) thread
    assert run.outputs(timeout=30) == list(range(12))
    starts = sorted(a.started_at for a in run.actions if a.task == "retuned-env.tick")
    assert 2 <= started_before <= 4
    after = [t for t in starts if t > changed]
    assert after[0] - changed < 0.15, "the next grant came at the new rate, not at the old schedule's turn"
    assert after[-1] - after[0] < 1.0, "the rest went at 50/s"
