"""A rate's wait is its own reason, and a task body's RateLimiter is a pool and a lane, in the browser:
the live widget says "waiting for rate llm" and shows the limiter's rate; the Lab's actions table
says it beside the phase, the action's detail lists each wait with its length, and the timeline
draws the body's limiter as a lane of grants per second against its limit."""

from __future__ import annotations

from tests.browser.conftest import TOKEN, open_notebook, run_all, write_notebook

WAITING = '''import flyte_nb as flyte

env = flyte.TaskEnvironment("waits-browser")

@env.task(tags=["llm"])
async def ask(i: int) -> int:
    async with flyte.RateLimiter("llm-body", 20, per="1s"):
        return i

@env.task
async def main(n: int) -> int:
    return len(list(flyte.map(ask, range(n))))

run = flyte.with_runcontext(name="rate-waits", throttle={"llm": flyte.Rate(1, per="1s")}).run(main, 25)
run'''


def test_the_rate_wait_and_the_body_limiter_are_shown(browser, lab, artifacts):
    write_notebook(lab["root"] / "rate_waits.ipynb", WAITING)
    page, errors = open_notebook(browser, lab, "rate_waits.ipynb", "rate-waits")
    run_all(page)
    waiting = page.locator('.flyte-nb-run .flyte-nb-wait[data-reason="waiting for rate llm"]')
    waiting.wait_for(timeout=60_000)
    assert waiting.inner_text().split(" ", 1)[1] == "waiting for rate llm"
    assert int(waiting.inner_text().split(" ", 1)[0]) >= 1
    limiter = page.locator('.flyte-nb-run .flyte-nb-rate-pool[data-pool="limiter:llm-body"]')
    limiter.wait_for(timeout=30_000)
    assert "of 20/s" in limiter.inner_text() and "available" in limiter.inner_text()
    page.screenshot(path=str(artifacts / "widget-rate-waits.png"))

    view = browser.new_page(viewport={"width": 1300, "height": 1000})
    view.on("pageerror", lambda error: errors.append(str(error)))
    view.goto(f"{lab['url']}/flyte-nb/runs/rate-waits?token={TOKEN}")
    own = '.flyte-nb-run-detail[data-run="rate-waits"]'  # Lab may restore an earlier test's run view beside it
    reason = view.locator(f'{own} .flyte-nb-action-row[data-phase="waiting"] .flyte-nb-wait-reason').first
    reason.wait_for(timeout=30_000)  # the run is live: 25 starts at 1/s
    assert reason.inner_text().strip() == "waiting for rate llm"
    view.screenshot(path=str(artifacts / "run-view-rate-waits.png"))

    detail = '.flyte-nb-run-detail[data-run="rate-waits"][data-phase="succeeded"]'
    view.wait_for_selector(detail, timeout=90_000)
    lane = view.locator(f'{detail} .flyte-nb-timeline .flyte-nb-rate-lane[data-series="limiter:llm-body"]')
    lane.wait_for(timeout=10_000)
    assert lane.get_attribute("data-capacity") == "20" and lane.get_attribute("data-started") == "25"
    tag = view.locator(f'{detail} .flyte-nb-timeline .flyte-nb-rate-lane[data-series="rate:llm"]')
    assert tag.get_attribute("data-started") == "25" and float(tag.get_attribute("data-peak")) <= 1.5
    assert view.locator(f"{detail} .flyte-nb-wait-reason").count() == 0, "nothing waits once the run is done"
    view.locator(f'{detail} .flyte-nb-action-row[data-action="5"]').click()
    waits = view.locator(f'{detail} .flyte-nb-action-detail[data-action="5"] .flyte-nb-waits .flyte-nb-wait')
    waits.first.wait_for(timeout=10_000)
    assert waits.count() == 1 and waits.first.get_attribute("data-pool") == "rate:llm"
    assert "waiting for rate llm" in waits.first.inner_text()
    view.screenshot(path=str(artifacts / "run-view-rate-waits-done.png"))
    assert errors == []
    view.close()
    page.close()
