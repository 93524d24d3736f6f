"""The widget shows bounded summaries of values, computed once (issue 18, item 5).

16 actions returning 50 MB each took 27.5 s with ``display(run)`` against 2.4 s without: reprlib
formatted every ``bytes`` result in full (200 MB of text) and cut it afterwards, at every refresh.
Memory is measured, not time: a summary that formats the whole value allocates its size.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import tracemalloc
import weakref

import pytest

import flyte_nb as flyte
from flyte_nb.notebook.widget_state import MAX_TEXT, Recent, result_text
from flyte_nb.notebook.widget import RunWidget

BIG = 20_000_000


def _peak(fn, *args):
    gc.collect()
    tracemalloc.start()
    try:
        result = fn(*args)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("make", [
    lambda: b"x" * BIG, lambda: bytearray(BIG), lambda: "y" * BIG, lambda: memoryview(bytes(BIG)),
    lambda: 7 ** 200_000, lambda: [b"z" * BIG] * 3, lambda: {"payload": bytearray(BIG), "n": 1},
    lambda: list(range(BIG // 10)),
], ids=["bytes", "bytearray", "str", "memoryview", "huge-int", "list-of-bytes", "dict-of-bytearray", "long-list"])
def test_a_summary_costs_nothing_like_the_value(make):
    value = make()
    text, peak = _peak(result_text, value)
    assert len(text) <= 4 * MAX_TEXT
    assert peak < 256 * 1024, f"summarising allocated {peak:,} bytes"


class Counted:
    calls = 0

    def __repr__(self) -> str:
        Counted.calls += 1
        return "<counted>"


def test_recent_results_are_summarised_once_and_then_let_go():
    recent = Recent()
    value = Counted()
    alive = weakref.ref(value)
    recent.add_result(object.__new__(_FakeAction), value)
    del value
    for _ in range(5):
        results, _ = recent.snapshot()
    assert Counted.calls == 1
    assert results[0]["text"] == "<counted>"
    gc.collect()
    assert alive() is None, "the widget keeps the text, not the value"


class _FakeAction:
    name = "a1"
    group_name = None
    phase = "succeeded"

    class spec:  # noqa: N801 - mimics Action.spec
        name = "t"


env = flyte.TaskEnvironment("widget-values")


@env.task
async def big(i: int) -> bytes:
    return bytes([i]) * BIG


shown = threading.Event()  # the widget is listening: the leaves may start (else they could all end first)


@env.task
async def sixteen() -> int:
    await asyncio.get_running_loop().run_in_executor(None, shown.wait, 30)
    return sum(map(len, flyte.map(big, range(16))))


def test_a_live_widget_of_big_results_shows_short_texts():
    shown.clear()
    run = flyte.run(sixteen)
    widget = RunWidget(run)
    flyte.run(lambda: None).wait(timeout=30)  # the engine thread has run the widget's attach by now
    shown.set()
    assert run.outputs(timeout=120) == 16 * BIG
    flyte.run(lambda: None).wait(timeout=30)  # the engine thread has flushed the widget by now
    state = widget.state
    assert state["phase"] == "succeeded" and state["results"]
    assert all(len(r["text"]) <= 4 * MAX_TEXT for r in state["results"])
    assert "(20,000,000 bytes)" in state["results"][0]["text"]
