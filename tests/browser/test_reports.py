"""flyte.report in Chromium: the live widget lists a run's reports and shows one in a sandboxed
frame (tabs switch inside it), and the Lab run view shows an action's report in a Report section,
an ``<iframe sandbox="allow-scripts">`` whose script cannot reach Lab's page. The report is written
in a process worker, so it reached the kernel through the worker protocol."""

from __future__ import annotations

from tests.browser.conftest import open_notebook, run_all, write_notebook
from tests.browser.test_runs_panel import row, show_runs_panel

REPORTED = '''import asyncio
import flyte_nb as flyte

env = flyte.TaskEnvironment("reported", backend="process")

@env.task
async def child(i: int) -> int:
    flyte.report.get_tab("numbers").log(f"<b class='square'>{i * i}</b>")
    return i

@env.task
async def main(n: int) -> int:
    flyte.report.log("<h1 id='headline'>loss went down</h1>")
    flyte.report.log("<script>try { window.parent.document.body.setAttribute('data-pwned', '1') } "
                     "catch (e) { document.body.setAttribute('data-blocked', '1') }</script>")
    flyte.report.get_tab("details").replace("<p id='detail'>three epochs</p>")
    await flyte.report.flush.aio()
    return sum(await asyncio.gather(*(child(i) for i in range(n))))

run = flyte.with_runcontext(name="reported-run").run(main, 3)
run.wait()
run'''

WIDGET = ".jp-OutputArea .flyte-nb-run"


def test_a_report_in_the_widget_and_in_the_run_view(browser, lab, artifacts):
    write_notebook(lab["root"] / "reported.ipynb", REPORTED)
    page, errors = open_notebook(browser, lab, "reported.ipynb", "reports")
    run_all(page)
    page.wait_for_selector(f"{WIDGET} .flyte-nb-phase.flyte-nb-succeeded", timeout=90_000)

    # the widget: one entry per action with a report; its page opens in a sandboxed frame
    entry = '.jp-OutputArea .flyte-nb-report[data-action="a0"]'
    page.wait_for_selector(entry, timeout=20_000)
    assert page.locator(".jp-OutputArea .flyte-nb-report").count() == 4  # main and its three children
    assert "details" in page.locator(f"{entry} .flyte-nb-report-tabs").inner_text()
    page.click(f"{entry} .flyte-nb-report-toggle")
    frame_node = page.wait_for_selector(f"{entry} iframe.flyte-nb-report-frame", timeout=10_000)
    assert frame_node.get_attribute("sandbox") == "allow-scripts"
    frame = frame_node.content_frame()
    frame.wait_for_selector("#headline", timeout=10_000)
    assert not frame.locator("#detail").is_visible()  # the other tab is hidden…
    frame.click("label:has-text('details')")
    frame.wait_for_selector("#detail", state="visible", timeout=5_000)  # …until its tab is chosen
    frame.wait_for_selector("body[data-blocked='1']", timeout=5_000)  # the page's script could not reach Lab
    assert page.evaluate("document.body.getAttribute('data-pwned')") is None
    assert page.locator("#headline").count() == 0  # never put into Lab's DOM
    page.screenshot(path=str(artifacts / "report-widget.png"))

    # the run view: the driver's action has a Report section with the same page
    show_runs_panel(page)
    page.wait_for_selector(row("reported-run", "succeeded"), timeout=20_000)
    page.click(row("reported-run"))
    detail = '.flyte-nb-run-detail[data-run="reported-run"]'
    page.wait_for_selector(f'{detail} .flyte-nb-action-row[data-action="0"]', timeout=20_000)
    page.click(f'{detail} .flyte-nb-action-row[data-action="0"]')
    section = f'{detail} .flyte-nb-action-detail[data-action="0"] .flyte-nb-report-section'
    lab_frame = page.wait_for_selector(f"{section} iframe", timeout=10_000)
    assert lab_frame.get_attribute("sandbox") == "allow-scripts"
    content = lab_frame.content_frame()
    content.wait_for_selector("#headline", timeout=10_000)
    content.wait_for_selector("body[data-blocked='1']", timeout=5_000)
    assert page.evaluate("document.body.getAttribute('data-pwned')") is None

    # a child's report, written in a worker, has its tab
    page.click(f'{detail} .flyte-nb-action-row[data-action="1"]')
    child = page.wait_for_selector(
        f'{detail} .flyte-nb-action-detail[data-action="1"] .flyte-nb-report-section iframe', timeout=10_000)
    child.content_frame().wait_for_selector("label:has-text('numbers')", timeout=10_000)
    # an action without a report has no Report section
    page.screenshot(path=str(artifacts / "report-run-view.png"))
    assert errors == []
    page.close()
