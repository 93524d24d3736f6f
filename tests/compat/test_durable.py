"""``flyte.durable``: a retry gets the same n-th ``time()``/``now()`` back and does not sleep again."""

from __future__ import annotations

import time

import flyte_nb as flyte

env = flyte.TaskEnvironment("durable")
SEEN: list[dict] = []


@env.task(retries=1)
async def replays() -> dict:
    start = time.monotonic()
    await flyte.durable.sleep.aio(0.6)
    first, second = await flyte.durable.time.aio(), flyte.durable.time()
    seen = {"attempt": flyte.ctx().attempt_number, "first": first, "second": second,
            "now": flyte.durable.now(), "slept": time.monotonic() - start}
    SEEN.append(seen)
    if seen["attempt"] == 0:
        time.sleep(0.05)
        raise ValueError("the first attempt fails after it slept and read the clock")
    return seen


def test_a_retry_replays_the_clock_and_the_sleep():
    SEEN.clear()
    flyte.run(replays).outputs(timeout=30)
    one, two = SEEN
    assert two["attempt"] == 1
    assert (two["first"], two["second"], two["now"]) == (one["first"], one["second"], one["now"])
    assert one["first"] <= one["second"] and one["slept"] >= 0.55
    assert two["slept"] < 0.3  # the first attempt's sleep already ended


def test_outside_a_task_they_are_the_plain_clock():
    before = time.time()
    assert before <= flyte.durable.time() <= time.time()
    flyte.durable.sleep(0.01)
