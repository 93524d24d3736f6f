"""The action tree over the REST API: each action's parent and depth, each group under the action
that made it, for a run whose driver and children run in process workers (every call made in a
worker is an action of the kernel's engine, recorded like any other)."""

from __future__ import annotations

import pytest

from tests.programs import tree

from .conftest import run_script

NESTED = tree("tree-api") + """
run = flyte.with_runcontext(name="tree").run(main)
assert run.outputs(timeout=120) == [5, 5], run.outputs()
"""


@pytest.fixture(scope="module")
def tree(server):
    run_script(server["home"], NESTED)
    return "tree"


def test_each_action_has_its_parent_and_depth(tree, client):
    status, page, _ = client.get(f"runs/{tree}/actions")
    assert status == 200 and page["total"] == 9
    actions = {a["number"]: a for a in page["actions"]}
    assert (actions[0]["parent"], actions[0]["depth"]) == (None, 0)
    stages = sorted(n for n, a in actions.items() if a["task"].endswith(".stage"))
    assert stages == [1, 2] and all(actions[n]["parent"] == 0 and actions[n]["depth"] == 1 for n in stages)
    leaves = [a for a in actions.values() if a["task"].endswith(".leaf")]
    assert len(leaves) == 6 and all(a["depth"] == 2 for a in leaves)
    assert sorted(a["parent"] for a in leaves) == [1, 1, 1, 2, 2, 2]
    status, one, _ = client.get(f"runs/{tree}/actions/{leaves[0]['number']}")
    assert status == 200 and one["depth"] == 2 and one["parent"] in stages


def test_each_stage_map_is_its_own_group_under_its_stage_with_its_total(tree, client):
    status, run, _ = client.get(f"runs/{tree}")
    assert status == 200
    groups = {g["name"]: g for g in run["groups"]}
    assert set(groups) == {"leaves", "leaves#2"}, groups
    assert sorted(g["parent"] for g in groups.values()) == [1, 2]
    for group in groups.values():
        assert group["total"] == 3 and group["counts"] == {"succeeded": 3}, group
        assert group["depth"] == 2 and group["parent_task"].endswith(".stage")
