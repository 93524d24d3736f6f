"""A recorded run keeps only its live actions and a window of recent finished ones in memory;
``Run.actions`` and ``StoredRun.actions`` read the rest back from the store, page by page."""

from __future__ import annotations

import asyncio

import pytest

import flyte_nb as flyte
from flyte_nb.api import action_pages
from flyte_nb.api.stored import StoredAction
from flyte_nb.data import recorder
from flyte_nb.engine.action import Action, Phase

from .conftest import stored

env = flyte.TaskEnvironment("window_tests")
N, WINDOW, CONCURRENCY = 1_500, 50, 8


@env.task
async def square(x: int) -> int:
    await asyncio.sleep(0)
    if x == 7:
        raise ValueError("seven is bad")
    return x * x


@env.task
async def fan(n: int) -> int:
    results = flyte.map(square, range(n), concurrency=CONCURRENCY, return_exceptions=True)
    return sum(r for r in results if isinstance(r, int))


@pytest.fixture
def small_window(monkeypatch, home):
    monkeypatch.setattr(recorder, "WINDOW", WINDOW)
    monkeypatch.setattr(action_pages, "PAGE", 97)  # several pages, none aligned with anything


def test_memory_keeps_the_window_and_the_store_the_rest(small_window):
    run = flyte.run(fan, N)
    run.wait()
    state = run.state
    assert state.action_count == N + 1
    assert len(state.kept) <= WINDOW + 1  # the window (the driver finished last: it is in it)
    actions = run.actions
    assert len(actions) == N + 1
    numbers = [a.number for a in actions]
    assert numbers == list(range(N + 1))
    kinds = {type(a) for a in actions}
    assert kinds == {Action, StoredAction}  # the recent ones live, the older ones read back
    old = run.action("a5")
    assert isinstance(old, StoredAction) and old.output() == 16 and old.inputs() == {"x": 4}
    assert run.actions[-1].number == N and run.actions[3].output() == 4
    assert [a.number for a in run.actions[10:13]] == [10, 11, 12]
    failed = [a for a in actions if a.phase in (Phase.FAILED,)]
    assert [a.number for a in failed] == [8] and "seven is bad" in str(failed[0].error)
    assert run.peak_concurrency(square) == CONCURRENCY
    assert run.outputs() == sum(x * x for x in range(N) if x != 7)


def test_stored_run_reads_like_the_live_one(small_window):
    run = flyte.run(fan, 300)
    run.wait()
    record = stored(run.name)
    assert len(record.actions) == 301
    assert [a.number for a in record.actions] == list(range(301))
    assert record.actions[-1].task.endswith("square") and record.actions[0].parent_number is None
    assert [a.number for a in record.errors] == [8]
    assert record.groups[next(iter(record.groups))]["succeeded"] == 299
    assert record.peak_concurrency("window_tests.square") == CONCURRENCY
    assert record.peak_concurrency(tag="nope") == 0


def test_without_the_store_every_action_stays(monkeypatch, home):
    monkeypatch.setenv("FLYTE_NB_STORE", "off")
    monkeypatch.setattr(recorder, "WINDOW", WINDOW)
    run = flyte.run(fan, 300)
    run.wait()
    assert len(run.state.kept) == 301 and isinstance(run.actions, list) and len(run.actions) == 301
