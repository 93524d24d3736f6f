"""A run that outpaces a slow (but working) writer waits for it: the queue, and memory, stay bounded."""

from __future__ import annotations

import asyncio
import time

import flyte_nb as flyte
from flyte_nb.data import recorder
from flyte_nb.data.batch import RunBatch

env = flyte.TaskEnvironment("backpressure_tests")
HIGH_WATER = 300  # events


@env.task
async def leaf(x: int) -> int:
    await asyncio.sleep(0)
    return x


@env.task
async def fan(n: int) -> int:
    return sum(flyte.map(leaf, range(n), concurrency=16))


def test_a_slow_writer_is_waited_for_and_the_backlog_stays_bounded(monkeypatch, home):
    # each write cycle takes longer than one catch-up wait: the old engine gave up after one wait,
    # raised its threshold and let the queue grow with the run (461 MB at 1M actions under load)
    monkeypatch.setattr(recorder, "HIGH_WATER", HIGH_WATER)
    monkeypatch.setattr(recorder, "CATCH_UP_WAIT", 0.05)
    build = RunBatch.build

    def slow_build(self, conn):
        if self.state.name.startswith("backpressure"):  # this test's run only (others may share the writer)
            time.sleep(0.4)
        return build(self, conn)

    monkeypatch.setattr(RunBatch, "build", slow_build)
    backlog: list[int] = []
    catch_up = recorder.RunListener._catch_up

    def measured(self):
        if self.state.name.startswith("backpressure"):
            backlog.append(self.backlog)
        catch_up(self)

    monkeypatch.setattr(recorder.RunListener, "_catch_up", measured)
    run = flyte.with_runcontext(name="backpressure").run(fan, 2_000)
    assert run.outputs(timeout=120) == sum(range(2_000))
    assert len(backlog) >= 3, "the run never outpaced the writer: nothing measured"
    assert max(backlog) <= 2 * HIGH_WATER, backlog  # in events
