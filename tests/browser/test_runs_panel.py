"""The flyte-nb JupyterLab extension in Chromium, against the real server extension and kernels:
the Runs panel lists a notebook's runs live, a run view shows groups, slot timeline and actions,
and runs are aborted from the panel and from the command palette."""

from __future__ import annotations

from tests.browser.conftest import TOKEN, open_notebook, run_all, write_notebook

FAN_OUT = '''import asyncio
import flyte_nb as flyte

env = flyte.TaskEnvironment("panel")

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

run = flyte.with_runcontext(name="panel-fan-out").run(main, 200)
run'''

LONG = '''import asyncio
import flyte_nb as flyte

env = flyte.TaskEnvironment("panel-long")

@env.task
async def nap(i: int) -> int:
    await asyncio.sleep(1)
    return i

@env.task
async def main() -> list:
    return [r async for r in flyte.map.aio(nap, range(100), concurrency=2)]

run = flyte.with_runcontext(name="NAME").run(main)
run'''

PANEL_TAB = '.lm-TabBar-tab[data-id="flyte-nb-runs"]'
WIDGET = ".jp-OutputArea .flyte-nb-run"


def row(name: str, phase: str | None = None) -> str:
    return f'.flyte-nb-run-row[data-run="{name}"]' + (f'[data-phase="{phase}"]' if phase else "")


def show_runs_panel(page) -> None:
    """Click the panel's tab in the left sidebar, as a person would."""
    page.click(PANEL_TAB)
    page.wait_for_selector(".flyte-nb-runs", state="visible", timeout=10_000)


def test_plugin_is_activated(browser, lab):
    write_notebook(lab["root"] / "empty.ipynb", "1 + 1")
    page, errors = open_notebook(browser, lab, "empty.ipynb", "runs-plugin")
    assert page.evaluate("window.jupyterapp.isPluginActivated('flyte-nb:plugin')") is True
    assert page.locator(PANEL_TAB).count() == 1
    assert errors == []
    page.close()


def test_the_panel_polls_only_while_visible_and_unchanged_lists_cost_a_304(browser, lab):
    write_notebook(lab["root"] / "quiet.ipynb", "1 + 1")
    page, errors = open_notebook(browser, lab, "quiet.ipynb", "runs-quiet")
    answers: list[int] = []
    page.on("response", lambda r: "/flyte-nb/api/runs?" in r.url and answers.append(r.status))
    show_runs_panel(page)
    page.wait_for_function("document.querySelector('.flyte-nb-runs-count').textContent !== ''", timeout=10_000)
    page.wait_for_timeout(5_000)  # measuring the polling rate itself
    shown = list(answers)
    assert 2 <= len(shown) <= 6, shown  # every 1.5 s (fewer when the machine is busy)
    assert shown[0] == 200 and set(shown[1:]) == {304}, shown  # nothing ran meanwhile
    page.click(PANEL_TAB)  # collapse the sidebar
    page.wait_for_selector(".flyte-nb-runs", state="hidden", timeout=5_000)
    settled = len(answers)
    page.wait_for_timeout(4_000)
    assert len(answers) - settled == 0
    assert errors == []
    page.close()


def test_fan_out_in_the_widget_the_panel_and_the_run_view(browser, lab, artifacts):
    write_notebook(lab["root"] / "panel_fan_out.ipynb", FAN_OUT)
    page, errors = open_notebook(browser, lab, "panel_fan_out.ipynb", "runs-fan-out")
    show_runs_panel(page)
    run_all(page)

    # the live widget under the cell: three slot cells held, then the whole map done
    page.wait_for_function(
        "document.querySelectorAll('.flyte-nb-pool .flyte-nb-slot.flyte-nb-held').length === 3", timeout=30_000)
    page.wait_for_selector(f"{WIDGET} .flyte-nb-phase.flyte-nb-succeeded", timeout=60_000)
    assert "196/200 done" in page.locator(f"{WIDGET} .flyte-nb-group").first.inner_text()

    # the panel: the run appears and finishes, also with "this notebook only"
    page.wait_for_selector(row("panel-fan-out", "succeeded"), timeout=20_000)
    page.check(".flyte-nb-notebook-filter")
    page.wait_for_selector(row("panel-fan-out", "succeeded"), timeout=10_000)
    assert "201/201 done" in page.locator(row("panel-fan-out")).inner_text()
    assert page.locator(f'{row("panel-fan-out")} .flyte-nb-abort').is_hidden()
    page.select_option(".flyte-nb-status-filter", "failed")
    page.wait_for_selector(".flyte-nb-runs-empty:visible", timeout=10_000)
    page.select_option(".flyte-nb-status-filter", "succeeded")
    page.wait_for_selector(row("panel-fan-out"), timeout=10_000)

    # the run view
    page.click(row("panel-fan-out"))
    detail = '.flyte-nb-run-detail[data-run="panel-fan-out"][data-phase="succeeded"]'
    page.wait_for_selector(detail, timeout=10_000)
    assert page.locator("#flyte-nb-run-panel-fan-out").count() == 1
    group = page.locator(f'{detail} .flyte-nb-group[data-group="work"]')
    assert group.get_attribute("data-done") == "200" and group.get_attribute("data-total") == "200"
    assert "4 failed" in group.inner_text() and "3 slots" in group.inner_text()
    series = page.locator(f'{detail} .flyte-nb-timeline .flyte-nb-timeline-row[data-series="work"]')
    assert series.get_attribute("data-capacity") == "3" and series.get_attribute("data-peak") == "3"
    assert float(series.get_attribute("data-utilisation")) > 0.5  # three slots kept busy most of the time
    assert series.locator("svg path.flyte-nb-timeline-line").count() == 1
    assert series.locator("svg line.flyte-nb-timeline-capacity").count() == 1
    assert page.locator(f'{detail} .flyte-nb-timeline-row[data-series="run"]').count() == 1
    page.wait_for_selector(f"{detail} .flyte-nb-action-row", timeout=10_000)
    assert page.locator(f"{detail} .flyte-nb-action-row").count() == 100  # the first page
    assert page.locator(f"{detail} .flyte-nb-range").inner_text() == "1–100 of 201"
    assert page.locator(f"{detail} .flyte-nb-open-notebook").is_visible()
    page.screenshot(path=str(artifacts / "runs-panel-detail.png"))

    # the actions of one phase, and one action in full
    page.select_option(f"{detail} .flyte-nb-phase-filter", "failed")
    page.wait_for_function(
        f"document.querySelectorAll('{detail} .flyte-nb-action-row').length === 4", timeout=10_000)
    assert page.locator(f'{detail} .flyte-nb-action-row[data-phase="failed"]').count() == 4
    page.locator(f"{detail} .flyte-nb-action-row").last.click()
    page.wait_for_selector(f'{detail} .flyte-nb-action-detail[data-phase="failed"]', timeout=10_000)
    pane = page.locator(f"{detail} .flyte-nb-action-detail")
    assert "bad item 199" in pane.inner_text()
    pane.locator("summary").first.click()
    assert "ValueError" in pane.locator(".flyte-nb-traceback-text").inner_text()
    page.screenshot(path=str(artifacts / "runs-panel-action.png"))

    # a succeeded action shows what it printed and returned
    page.select_option(f"{detail} .flyte-nb-phase-filter", "succeeded")
    page.wait_for_function(
        f"document.querySelectorAll('{detail} .flyte-nb-action-row[data-phase=\"failed\"]').length === 0",
        timeout=10_000)
    page.locator(f'{detail} .flyte-nb-action-row[data-action="4"]').click()  # a0 is main, a4 is work(3)
    page.wait_for_selector(f'{detail} .flyte-nb-action-detail[data-action="4"]', timeout=10_000)
    assert "work 3" in page.locator(f"{detail} .flyte-nb-logs").inner_text()
    assert page.locator(f"{detail} .flyte-nb-preview").first.inner_text() == "3"

    # "Open notebook" brings the run's notebook forward
    page.click(f"{detail} .flyte-nb-open-notebook")
    page.wait_for_function("window.jupyterapp.shell.currentWidget.context?.path === 'panel_fan_out.ipynb'",
                           timeout=10_000)
    assert errors == []

    # Run.url's route opens the same view in a fresh Lab
    page.goto(f"{lab['url']}/flyte-nb/runs/panel-fan-out?token={TOKEN}")
    page.wait_for_selector('.flyte-nb-run-detail[data-run="panel-fan-out"][data-phase="succeeded"]', timeout=60_000)
    page.close()


def test_abort_from_the_panel_stops_the_run_in_the_notebook(browser, lab, artifacts):
    write_notebook(lab["root"] / "panel_long.ipynb", LONG.replace("NAME", "panel-long"))
    page, errors = open_notebook(browser, lab, "panel_long.ipynb", "runs-abort")
    run_all(page)
    page.wait_for_selector(f"{WIDGET} .flyte-nb-phase.flyte-nb-running", timeout=30_000)
    show_runs_panel(page)
    page.wait_for_selector(f'{row("panel-long", "running")}[data-live="true"]', timeout=15_000)
    page.screenshot(path=str(artifacts / "runs-panel-live.png"))
    page.click(f'{row("panel-long")} .flyte-nb-abort')
    page.wait_for_selector(f"{WIDGET} .flyte-nb-phase.flyte-nb-aborted", timeout=15_000)
    page.wait_for_selector(row("panel-long", "aborted"), timeout=15_000)
    assert page.locator(f'{row("panel-long")} .flyte-nb-abort').is_hidden()
    assert page.locator(".jp-OutputArea .flyte-nb-pool .flyte-nb-slot.flyte-nb-held").count() == 0
    page.click(row("panel-long"))
    detail = '.flyte-nb-run-detail[data-run="panel-long"][data-phase="aborted"]'
    page.wait_for_selector(detail, timeout=10_000)
    assert "Runs panel" in page.locator(f"{detail} .flyte-nb-abort-reason").inner_text()
    assert page.locator(f"{detail} .flyte-nb-abort").is_hidden()
    assert "cancelled" in page.locator(f'{detail} .flyte-nb-group[data-group="nap"]').inner_text()
    page.screenshot(path=str(artifacts / "runs-panel-aborted.png"))
    assert errors == []
    page.close()


def test_abort_cell_run_from_the_command_palette(browser, lab, artifacts):
    write_notebook(lab["root"] / "panel_cell.ipynb", LONG.replace("NAME", "panel-cell"))
    page, errors = open_notebook(browser, lab, "panel_cell.ipynb", "runs-cell")
    run_all(page)
    page.wait_for_selector(f"{WIDGET} .flyte-nb-phase.flyte-nb-running", timeout=30_000)

    # the cell's context menu offers the command
    page.locator(".jp-Notebook .jp-Cell .jp-InputArea-prompt").first.click(button="right")
    page.wait_for_selector('.lm-Menu-item[data-command="flyte-nb:abort-cell-run"]', timeout=5_000)
    page.keyboard.press("Escape")

    page.locator(".jp-Notebook .jp-Cell .jp-InputArea-prompt").first.click()
    page.keyboard.press("Control+Shift+C")
    page.wait_for_selector(".lm-CommandPalette-input", state="visible", timeout=5_000)
    page.fill(".lm-CommandPalette-input", "Abort the run started by the current cell")
    item = page.locator('.lm-CommandPalette-item[data-command="flyte-nb:abort-cell-run"]')
    item.wait_for(timeout=5_000)
    page.screenshot(path=str(artifacts / "runs-palette.png"))
    item.click()
    page.wait_for_selector(f"{WIDGET} .flyte-nb-phase.flyte-nb-aborted", timeout=15_000)
    show_runs_panel(page)
    page.wait_for_selector(row("panel-cell", "aborted"), timeout=15_000)
    assert "aborted from its cell" in page.locator(row("panel-cell")).inner_text()
    assert errors == []
    page.close()
