"""One action API wherever an action comes from (issue 18, item 9).

``flyte.get_run(name)`` in the kernel that made the run returns the live ``Run``; its actions used
to lack what stored ones have: ``actions[3].output()`` was a TypeError, ``.inputs()`` and
``.attempt_history()`` AttributeErrors.
"""

from __future__ import annotations

import pytest

import flyte_nb as flyte
from flyte_nb.api.history import StoredRun
from flyte_nb.api.stored import open_store, rows_of

API = ("name", "number", "task", "parent_name", "group_name", "tags", "backend", "index", "phase", "attempts",
       "queued_at", "started_at", "ended_at", "duration", "error", "logs")
METHODS = ("inputs", "output", "attempt_history")

env = flyte.TaskEnvironment("one-api")
tries = {"n": 0}


@env.task
async def square(x: int) -> int:
    print(f"square {x}")
    return x * x


@env.task(retries=1)
async def flaky(x: int) -> int:
    tries["n"] += 1
    if tries["n"] == 1:
        raise ValueError("first try fails")
    return -x


@env.task
async def broken(x: int) -> int:
    raise KeyError(x)


@env.task
async def driver(n: int) -> list:
    values = list(flyte.map(square, range(n)))
    values.append(await flaky(5))
    try:
        await broken(1)
    except KeyError:
        values.append("caught")
    return values


def _stored(name: str) -> StoredRun:
    store = open_store()
    return StoredRun(store, rows_of(store, "SELECT * FROM runs WHERE name = ?", (name,))[0])


def _call(fn):
    try:
        return ("value", fn())
    except Exception as error:  # noqa: BLE001 - compared by type and message
        return ("error", type(error).__name__, str(error))


def test_a_live_run_from_get_run_has_the_actions_of_a_stored_one():
    tries["n"] = 0
    run = flyte.with_runcontext(name="one-api").run(driver, 4)
    assert run.outputs(timeout=60) == [0, 1, 4, 9, -5, "caught"]
    live = flyte.get_run(run.name)
    assert live is run, "this kernel's run comes back live"
    stored = _stored(run.name)
    assert len(live.actions) == len(stored.actions) == 7
    for mine, theirs in zip(live.actions, stored.actions):
        for attribute in API:
            got, expected = getattr(mine, attribute), getattr(theirs, attribute)
            if attribute == "duration":
                assert got == pytest.approx(expected, abs=0.05)
            elif attribute == "error":
                assert type(got) is type(expected) and str(got).splitlines()[0] == str(expected).splitlines()[0]
            elif attribute in ("queued_at", "started_at", "ended_at"):
                assert got == pytest.approx(expected, abs=0.01) if expected is not None else got is None
            else:
                assert got == expected, (mine, attribute)
        for method in METHODS:
            assert _call(getattr(mine, method)) == _call(getattr(theirs, method)), (mine, method)
    assert live.actions[3].output() == 4
    assert live.actions[3].inputs() == {"x": 2}  # a1..a4 are the map items 0..3
    assert live.actions[3].logs == "square 2\n"
    retried = next(a for a in live.actions if a.task == "one-api.flaky")
    assert [row["phase"] for row in retried.attempt_history()] == ["failed", "succeeded"]
    with pytest.raises(flyte.StoreError, match="has no output: it is failed"):
        next(a for a in live.actions if a.task == "one-api.broken").output()


def test_without_the_run_store_a_live_action_says_why_it_has_no_values(monkeypatch):
    monkeypatch.setenv("FLYTE_NB_STORE", "off")
    run = flyte.run(driver, 2)
    run.outputs(timeout=60)
    with pytest.raises(flyte.StoreError, match="the run store, which is off"):
        run.actions[1].output()
