"""What task bodies print is kept per action (and announced as events)."""

from __future__ import annotations

import asyncio

import flyte_nb as flyte
from flyte_nb.engine import output
from flyte_nb.engine.kernel import kernel

env = flyte.TaskEnvironment("printing")


@env.task
async def chatty(i: int) -> int:
    print(f"hello from {i}")
    await asyncio.sleep(0.01)
    print(f"bye from {i}")
    return i


@env.task
def chatty_sync(i: int) -> int:
    print(f"sync {i}")
    return i


@env.task
async def main() -> list[int]:
    print("driver speaks")
    return await asyncio.gather(*(chatty(i) for i in range(3)), chatty_sync.aio(7))


def test_each_action_keeps_its_own_output(capsys):
    events = []
    run = flyte.with_runcontext(listeners=[events.append]).run(main)
    assert run.outputs(timeout=5) == [0, 1, 2, 7]
    by_task = {a.name: a.logs for a in run.actions}
    assert by_task["a0"] == "driver speaks\n"
    texts = sorted(a.logs for a in run.actions[1:])
    assert texts == ["hello from 0\nbye from 0\n", "hello from 1\nbye from 1\n",
                     "hello from 2\nbye from 2\n", "sync 7\n"]
    streamed: dict[str, str] = {}
    for event in events:
        if event.kind is flyte.EventKind.OUTPUT:
            assert event.data[0] == "stdout"
            streamed[event.action.name] = streamed.get(event.action.name, "") + event.data[1]
    assert streamed == {a.name: a.logs for a in run.actions}


def test_echo_prefixes_lines_with_the_action(capsys):
    output.install()
    run = flyte.with_runcontext(name="echo-test").run(chatty_sync, 3)
    run.outputs(timeout=5)
    assert "[echo-test a0 printing.chatty_sync] sync 3\n" in capsys.readouterr().out


def test_output_is_bounded(monkeypatch):
    monkeypatch.setattr(output, "MAX_CHARS", 100)
    monkeypatch.setattr(kernel(), "echo", False)

    @env.task
    def floods() -> None:
        for i in range(100):
            print(f"line {i:03d}")

    run = flyte.run(floods)
    run.outputs(timeout=5)
    kept = run.actions[0].logs
    assert len(kept) <= 100 and kept.endswith("line 099\n")


# ----------------------------------------------------------- O(written) capture (issue 18, item 10)
from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=300), max_size=60), st.integers(1, 500))
def test_the_kept_tail_is_exactly_the_last_max_chars(writes, limit):
    saved = output.MAX_CHARS
    output.MAX_CHARS = limit
    try:
        tail = output.OutputTail()
        for text in writes:
            tail.append(text)
            assert len(tail) == len("".join(tail)) <= limit
        assert "".join(tail) == "".join(writes)[-limit:] if writes else "".join(tail) == ""
    finally:
        output.MAX_CHARS = saved


class _Run:
    name = "r"

    def emit(self, *args):
        pass


class _Spec:
    name = "t"


class _Action:
    __slots__ = ("printed", "run", "spec", "name")

    def __init__(self):
        self.printed, self.run, self.spec, self.name = None, _Run(), _Spec(), "a0"


def test_a_write_never_re_measures_what_is_kept(monkeypatch):
    """Printing 100 MB in 100-character lines took 86.6 s (plain Python 1.7 s): every write summed
    the lengths of the kept chunks, then re-joined the 256 KiB tail. Counted, not timed."""
    import builtins

    monkeypatch.setattr(kernel(), "echo", False)
    sums = []

    def counting_sum(values, start=0):
        values = list(values)
        sums.append(len(values))
        return builtins.sum(values, start)

    monkeypatch.setattr(output, "sum", counting_sum, raising=False)  # shadows the builtin in that module
    action = _Action()
    line = "x" * 99 + "\n"
    for _ in range(4 * output.MAX_CHARS // len(line)):  # the tail is full, then trimmed at every write
        output.record(action, "stdout", line)
    assert sum(sums) == 0, f"{len(sums)} writes re-measured {sum(sums):,} kept chunks"
    assert len(action.printed.chunks) <= output.MAX_CHARS // len(line) + 1
    assert "".join(action.printed) == (line * (4 * output.MAX_CHARS))[-output.MAX_CHARS:]
