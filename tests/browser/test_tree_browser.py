"""The action tree in Chromium, for a run whose driver and children run in process workers: the
widget draws each map under the action that made it with n/N progress, and the Lab run view's
actions table gives every action its parent and depth, its groups their parent."""

from __future__ import annotations

from tests.browser.conftest import open_notebook, run_all, write_notebook
from tests.browser.test_runs_panel import row, show_runs_panel
from tests.programs import tree

NESTED = tree("browser-tree", leaf="time.sleep(0.05)\n    return i").lstrip() + '''
run = flyte.with_runcontext(name="browser-tree").run(main)
run'''

WIDGET = ".jp-OutputArea .flyte-nb-run"


def test_the_widget_and_the_run_view_show_the_action_tree(browser, lab, artifacts):
    write_notebook(lab["root"] / "tree.ipynb", NESTED)
    page, errors = open_notebook(browser, lab, "tree.ipynb", "tree")
    show_runs_panel(page)
    run_all(page)

    # the widget: each stage's map under its stage, with its total
    page.wait_for_selector(f"{WIDGET} .flyte-nb-phase.flyte-nb-succeeded", timeout=90_000)
    # the run's phase and its groups' last counts may arrive in two coalesced updates
    page.wait_for_function(f"""() => [...document.querySelectorAll('{WIDGET} .flyte-nb-group')]
        .filter(g => g.innerText.includes('3/3 done')).length === 2""", timeout=30_000)
    parents = page.locator(f"{WIDGET} .flyte-nb-tree-parent")
    assert [parents.nth(i).get_attribute("data-action") for i in range(parents.count())] == ["a1", "a2"]
    assert "a1 stage" in parents.first.inner_text()
    groups = page.locator(f"{WIDGET} .flyte-nb-group")  # one per stage; which is "leaves#2" is a race
    assert groups.count() == 2
    assert {groups.nth(i).get_attribute("data-group") for i in range(2)} == {"leaves", "leaves#2"}
    assert [groups.nth(i).get_attribute("data-parent") for i in range(2)] == ["a1", "a2"]  # in tree order
    assert all("3/3 done" in text for text in groups.all_inner_texts())
    assert "9 succeeded" in page.locator(f"{WIDGET} .flyte-nb-chips").inner_text()
    page.screenshot(path=str(artifacts / "widget-tree.png"))

    # the run view: groups under their stage, parent and depth of every action
    page.wait_for_selector(row("browser-tree", "succeeded"), timeout=20_000)
    page.click(row("browser-tree"))
    detail = '.flyte-nb-run-detail[data-run="browser-tree"][data-phase="succeeded"]'
    page.wait_for_selector(f"{detail} .flyte-nb-action-row", timeout=10_000)
    headers = page.locator(f"{detail} .flyte-nb-actions-table th").all_inner_texts()
    assert headers[:4] == ["#", "task", "parent", "depth"], headers  # this branch's build is what Lab loaded
    rows = page.locator(f"{detail} .flyte-nb-action-row")
    assert rows.count() == 9
    tree = [(rows.nth(i).get_attribute("data-action"), rows.nth(i).get_attribute("data-parent"),
             rows.nth(i).get_attribute("data-depth")) for i in range(9)]
    assert tree[0] == ("0", "", "0")
    assert sorted(tree[1:3]) == [("1", "0", "1"), ("2", "0", "1")]
    assert sorted((p, d) for _, p, d in tree[3:]) == [("1", "2")] * 3 + [("2", "2")] * 3
    assert rows.nth(3).locator(".flyte-nb-action-parent").inner_text() in ("a1", "a2")
    groups = page.locator(f"{detail} .flyte-nb-group")
    assert groups.count() == 2
    assert sorted(groups.nth(i).get_attribute("data-parent") for i in range(2)) == ["1", "2"]
    for i in range(2):
        group = groups.nth(i)
        assert group.get_attribute("data-done") == "3" and group.get_attribute("data-total") == "3"
        assert f"in a{group.get_attribute('data-parent')} browser-tree.stage" in group.inner_text()
    page.screenshot(path=str(artifacts / "run-view-tree.png"))
    assert errors == []
    page.close()
