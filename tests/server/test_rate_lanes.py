"""The run timeline's rate lanes: actions started per second against each rate, from the store."""

from __future__ import annotations

import pytest

from flyte_nb.server.rates import series
from tests.server.conftest import run_script

RATED = """
import asyncio
import flyte_nb as flyte

env = flyte.TaskEnvironment("lanes", rate=flyte.Rate(50, per="1s"))

@env.task(tags=["llm"])
async def ask(i: int) -> int:
    return i

@env.task
async def fan(n: int) -> list[int]:
    asked = list(flyte.map(ask, range(n), rate=flyte.Rate(20, per="1s")))
    return asked + list(await asyncio.gather(*(ask(i) for i in range(n))))

run = flyte.with_runcontext(name="rated", throttle={"llm": [2, flyte.Rate(10, per="1s")]}).run(fan, 15)
assert len(run.outputs(timeout=60)) == 30
"""


@pytest.fixture(scope="module")
def rated(server):
    run_script(server["home"], RATED)
    return "rated"


def test_each_rate_is_a_lane_of_starts_per_second_against_its_limit(rated, client):
    status, run, _ = client.get(f"runs/{rated}")
    assert status == 200
    lanes = {s["name"]: s for s in run["timeline"]["series"] if s["kind"] == "rate"}
    assert set(lanes) == {"rate:llm", "rate:map.ask", "rate:env.lanes"}
    assert lanes["rate:llm"]["capacity"] == 10 and lanes["rate:llm"]["started"] == 30
    assert lanes["rate:map.ask"]["capacity"] == 20 and lanes["rate:map.ask"]["started"] == 15
    assert lanes["rate:env.lanes"]["capacity"] == 50 and lanes["rate:env.lanes"]["started"] == 31  # and the driver
    llm = lanes["rate:llm"]
    assert 8 <= llm["peak"] <= 12, "the tag's rate (the tightest) was used at close to its limit, never much above"
    assert all(value <= 12 for _, value in llm["points"])
    times = [t for t, _ in llm["points"]]
    assert times == sorted(times) and run["timeline"]["start"] <= times[0] and times[-1] <= run["timeline"]["end"] + 1e-6
    assert {"name": "rate:llm", "capacity": 10} in run["pools"]


def test_lane_buckets_are_a_second_or_more_and_count_every_start():
    lane = series("rate:x", 5, [0.1, 0.2, 1.5, 2.9, 3.0], 0.0, 3.0)
    assert lane["points"] == [[0.0, 2.0], [1.0, 1.0], [2.0, 2.0], [3.0, 2.0]]
    assert lane["started"] == 5 and lane["mean"] == round(5 / 3, 3) and lane["peak"] == 2.0
    short = series("rate:x", 5, [10.0, 10.2], 10.0, 10.4)  # shorter than a second: one bucket over the span
    assert short["points"] == [[10.0, 5.0], [10.4, 5.0]]
    long = series("rate:x", 1, [float(i) for i in range(3_600)], 0.0, 3_600.0)
    assert len(long["points"]) <= 201 and long["started"] == 3_600


BODY = """
import flyte_nb as flyte

env = flyte.TaskEnvironment("body-lanes")

@env.task
async def ask(i: int) -> int:
    limiter = flyte.RateLimiter("llm-body", 10, per="1s")  # inside the body: no action-level rate
    for _ in range(3):
        grant = await limiter.acquire(2)
        grant.settle(1)
    return i

@env.task
async def fan(n: int) -> int:
    return len(list(flyte.map(ask, range(n))))

run = flyte.with_runcontext(name="body-rated").run(fan, 5)
assert run.outputs(timeout=60) == 5
"""


def test_a_body_level_limiter_is_a_lane_kept_in_the_run_row_not_scanned(server, client):
    run_script(server["home"], BODY)
    import sqlite3

    with sqlite3.connect(server["home"] / "runs.sqlite") as db:  # lanes must come from the run's row alone
        removed = db.execute("DELETE FROM actions WHERE run = (SELECT id FROM runs WHERE name = 'body-rated')").rowcount
    assert removed == 6
    status, run, _ = client.get("runs/body-rated")
    assert status == 200
    lanes = {s["name"]: s for s in run["timeline"]["series"] if s["kind"] == "rate"}
    assert set(lanes) == {"limiter:llm-body"}
    lane = lanes["limiter:llm-body"]
    assert lane["capacity"] == 10 and lane["started"] == 15, "15 grants of 2 units, each settled at 1"
    assert 0 < lane["peak"] <= 12 and all(value <= 12 for _, value in lane["points"])
    assert {"name": "limiter:llm-body", "capacity": 10} in run["pools"]
