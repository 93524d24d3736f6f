"""What task bodies print is kept per action (and announced as events)."""

from __future__ import annotations

import asyncio

import flyte_nb as flyte
from flyte_nb.engine import output

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
    monkeypatch.setattr(output, "echo", False)

    @env.task
    def floods() -> None:
        for i in range(100):
            print(f"line {i:03d}")

    run = flyte.run(floods)
    run.outputs(timeout=5)
    kept = run.actions[0].logs
    assert len(kept) <= 100 and kept.endswith("line 099\n")
