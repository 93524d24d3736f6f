"""The live widget in JupyterLab, in Chromium: slot cells fill and free, progress reaches the end."""

from __future__ import annotations

from tests.browser.conftest import open_notebook, run_all, write_notebook

FAN_OUT = '''import asyncio
import flyte_nb as flyte

env = flyte.TaskEnvironment("browser")

@env.task
async def work(i: int) -> int:
    await asyncio.sleep(0.02)
    if i % 50 == 49:
        raise ValueError(f"bad item {i}")
    print(f"work {i}")
    return i

@env.task
async def main(n: int) -> int:
    ok = 0
    async for result in flyte.map.aio(work, range(n), concurrency=3):
        ok += not isinstance(result, Exception)
    return ok

run = flyte.with_runcontext(name="browser-fan-out").run(main, 200)
run'''


def test_widget_shows_slots_filling_and_progress_reaching_the_end(browser, lab, artifacts):
    write_notebook(lab["root"] / "fan_out.ipynb", FAN_OUT)
    page, errors = open_notebook(browser, lab, "fan_out.ipynb", "widget-fan-out")
    run_all(page)
    page.wait_for_selector(".flyte-nb-run", timeout=30_000)
    page.wait_for_function("document.querySelectorAll('.flyte-nb-pool .flyte-nb-slot.flyte-nb-held').length === 3",
                           timeout=10_000)
    page.screenshot(path=str(artifacts / "widget-live.png"))
    cells = page.locator(".flyte-nb-pool").filter(has_text="map:work").locator(".flyte-nb-slot")
    assert cells.count() == 3
    page.wait_for_selector(".flyte-nb-phase.flyte-nb-succeeded", timeout=30_000)
    group = page.locator(".flyte-nb-group").filter(has_text="work")
    assert "196/200 done" in group.inner_text() and "4 failed" in group.inner_text()
    assert page.locator(".flyte-nb-pool .flyte-nb-slot.flyte-nb-held").count() == 0
    page.locator(".flyte-nb-error summary").first.click()
    assert "ValueError: bad item 199" in page.locator(".flyte-nb-error").first.inner_text()
    page.locator(".flyte-nb-result .flyte-nb-link").first.click()
    page.wait_for_selector(".flyte-nb-output", timeout=5_000)
    assert page.locator(".flyte-nb-output").first.inner_text().startswith("work ")
    page.screenshot(path=str(artifacts / "widget-done.png"))
    assert errors == []
    page.close()


SLOW = '''import asyncio
import flyte_nb as flyte

env = flyte.TaskEnvironment("browser-cancel")

@env.task
async def nap(i: int) -> int:
    await asyncio.sleep(30)
    return i

@env.task
async def main() -> list:
    return list(flyte.map(nap, range(10), concurrency=2))

run = flyte.with_runcontext(name="browser-cancel").run(main)
run'''


def test_cancel_button_aborts_the_run(browser, lab, artifacts):
    write_notebook(lab["root"] / "cancel.ipynb", SLOW)
    page, errors = open_notebook(browser, lab, "cancel.ipynb", "widget-cancel")
    run_all(page)
    page.wait_for_selector(".flyte-nb-phase.flyte-nb-running", timeout=30_000)
    page.click(".flyte-nb-cancel")
    page.wait_for_selector(".flyte-nb-phase.flyte-nb-aborted", timeout=10_000)
    assert page.locator(".flyte-nb-pool .flyte-nb-slot.flyte-nb-held").count() == 0
    page.screenshot(path=str(artifacts / "widget-cancelled.png"))
    assert errors == []
    page.close()


def test_widget_works_in_notebook_7(browser, lab, artifacts):
    from tests.browser.conftest import TOKEN

    write_notebook(lab["root"] / "classic.ipynb", FAN_OUT.replace("browser-fan-out", "notebook7-fan-out"))
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"{error} {error.stack}"))
    page.goto(f"{lab['url']}/notebooks/classic.ipynb?token={TOKEN}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    page.wait_for_function(
        "() => window.jupyterapp && window.jupyterapp.shell.currentWidget && "
        "window.jupyterapp.shell.currentWidget.sessionContext.session?.kernel?.status === 'idle'", timeout=60_000)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_selector(".flyte-nb-phase.flyte-nb-succeeded", timeout=60_000)
    assert "196/200 done" in page.locator(".flyte-nb-group").first.inner_text()
    page.screenshot(path=str(artifacts / "widget-notebook7.png"))
    # Notebook 7.6 itself logs "reading 'schema'" at start-up; none may come from our module
    assert [e for e in errors if any(s in e for s in ("anywidget", "flyte", "blob:"))] == []
    page.close()
