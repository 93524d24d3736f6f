"""The run view's timeline shows each rate as a lane of starts per second against its limit."""

from __future__ import annotations

from tests.browser.conftest import TOKEN, open_notebook, run_all, write_notebook

RATED = '''import flyte_nb as flyte

env = flyte.TaskEnvironment("lane")

@env.task
async def ask(i: int) -> int:
    return i

@env.task
async def main(n: int) -> int:
    return len(list(flyte.map(ask, range(n), rate=flyte.Rate(10, per="1s"))))

run = flyte.with_runcontext(name="rate-lane").run(main, 30)
print("asked", run.outputs(timeout=60))'''


def test_a_rate_lane_in_the_run_view(browser, lab, artifacts):
    write_notebook(lab["root"] / "rate_lane.ipynb", RATED)
    page, errors = open_notebook(browser, lab, "rate_lane.ipynb", "rate-lane")
    run_all(page)
    page.wait_for_function("document.body.innerText.includes('asked 30')", timeout=60_000)

    page.goto(f"{lab['url']}/flyte-nb/runs/rate-lane?token={TOKEN}")
    detail = '.flyte-nb-run-detail[data-run="rate-lane"][data-phase="succeeded"]'
    page.wait_for_selector(detail, timeout=60_000)
    lane = page.locator(f'{detail} .flyte-nb-timeline .flyte-nb-rate-lane[data-series="rate:map.ask"]')
    lane.wait_for(timeout=10_000)
    assert lane.get_attribute("data-kind") == "rate"
    assert lane.get_attribute("data-capacity") == "10" and lane.get_attribute("data-started") == "30"
    assert 8 <= float(lane.get_attribute("data-peak")) <= 12, "used at close to its limit, never much above"
    assert lane.locator("svg path.flyte-nb-timeline-line").count() == 1
    assert lane.locator("svg line.flyte-nb-timeline-capacity").count() == 1
    assert "of 10/s at most" in lane.inner_text()
    slots = page.locator(f'{detail} .flyte-nb-timeline-row[data-series="ask"]')  # the slot lane is still there
    assert slots.count() == 1 and slots.get_attribute("data-kind") is None
    page.screenshot(path=str(artifacts / "run-view-rate-lane.png"))
    assert errors == []
    page.close()
