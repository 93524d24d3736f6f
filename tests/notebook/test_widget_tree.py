"""The widget in a real kernel shows the action tree of a run whose driver runs in a process worker:
each map made inside a worker is its own group, under the action that made it, with its total
(n/N progress, not n/?), and every nested call is counted."""

from __future__ import annotations

import pytest

from tests.notebook.kernel import Kernel

NESTED = """
import asyncio
import flyte_nb as flyte

env = flyte.TaskEnvironment("widget-tree", backend="process", concurrency=2)

@env.task
def leaf(i: int) -> int:
    return i * i

@env.task
async def stage(k: int) -> int:
    return sum(flyte.map(leaf, range(3 + k)))  # a map made inside a worker: 3 and 4 inputs

@env.task
async def bounded(n: int) -> int:
    return sum([r async for r in flyte.map.aio(leaf, range(n), concurrency=2, group_name="bounded")])

@env.task
async def main() -> list:
    return await asyncio.gather(stage(0), stage(1), bounded(5))

run = flyte.with_runcontext(name="widget-tree").run(main)
run
"""


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    k = Kernel(tmp_path_factory.mktemp("kernel"))
    yield k
    k.close()


def test_groups_made_in_workers_sit_under_their_parent_with_their_totals(kernel):
    start = kernel.execute(NESTED)
    assert start.status == "ok", start.error
    model_id = start.data("application/vnd.jupyter.widget-view+json")[0]["model_id"]
    waited = kernel.execute("print(run.outputs(timeout=120))")
    assert waited.status == "ok", waited.error
    assert waited.stdout == "[5, 14, 30]\n"
    messages = [*start.messages, *waited.messages, *kernel.drain(0.5)]
    updates = [m for m in messages if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == model_id
               and m["content"]["data"].get("method") == "update"]
    final = updates[-1]["content"]["data"]["state"]["state"]
    assert final["phase"] == "succeeded" and final["counts"]["succeeded"] == 1 + 3 + 3 + 4 + 5
    assert final["actions"] == 16
    groups = final["groups"]
    # tree order: a1's, a2's, a3's (which stage's map is named "leaf#2" is a race between two workers)
    assert {g["name"] for g in groups[:2]} == {"leaf", "leaf#2"} and groups[2]["name"] == "bounded"
    assert [(g["parent"], g["parent_task"], g["depth"]) for g in groups] == [
        ("a1", "stage", 2), ("a2", "stage", 2), ("a3", "bounded", 2)]
    assert [(g["succeeded"], g["total"]) for g in groups] == [(3, 3), (4, 4), (5, 5)]  # n/N, not n/?
    assert all(g["parent_phase"] == "succeeded" for g in groups)
    live = [u["content"]["data"]["state"]["state"] for u in updates]
    assert all(g["total"] is not None for state in live for g in state["groups"]), "a total from the first snapshot"
    html = kernel.execute("from flyte_nb.notebook.widget_state import snapshot\n"
                          "from flyte_nb.notebook.summary_html import summary_html\n"
                          "print(summary_html(snapshot(run.state)))")
    assert f"{groups[1]['name']} (in a2 stage)" in html.stdout
