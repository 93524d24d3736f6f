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
