"""The run view of a million-action run in Chromium: it renders within 2 s, its timeline covers the
whole run, and its actions table pages by keyset.

Executing a million actions takes about a minute on two cores, too long for every test run: the
store is built directly instead, through :class:`~flyte_nb.data.store.Store` (schema and
migrations as the writer has them), with rows inserted by SQL and the timeline kept by the
writer's own :class:`~flyte_nb.data.occupancy.Lane`, as a recorded run of that shape leaves them.
``benchmarks/bench_million.py`` records a real one.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from flyte_nb.data.occupancy import Lane
from flyte_nb.data.store import Store
from tests.browser.conftest import TOKEN

N = int(os.environ.get("FLYTE_NB_TEST_ACTIONS", 1_000_000))
CONCURRENCY = 100
STEP = 0.004  # each wave of CONCURRENCY actions starts this long after the last: a 40 s run
NAME = "million-view"


def build_million_run(home: Path, name: str = NAME, n: int = N) -> None:
    """A finished run: a driver and ``n`` succeeded children of one map at concurrency 100."""
    store = Store(home)
    conn = store.connect()
    t0 = 1_700_000_000.0
    end = t0 + (n // CONCURRENCY + 1) * STEP + 0.01
    lanes = {key: Lane(key, kind, t0) for key, kind in (("run", "run"), ("leaf", "group"))}
    for start in range(0, n, 50_000):
        starts = [t0 + (i // CONCURRENCY) * STEP for i in range(start, min(n, start + 50_000))]
        ends = [s + 0.003 for s in starts]
        for lane in lanes.values():
            lane.add(starts, ends)
            lane.sweep(starts[-1])
    for lane in lanes.values():
        lane.sweep(float("inf"))
    timeline = {"start": t0, "end": end, "series": [lanes["run"].series(None, end), lanes["leaf"].series(CONCURRENCY, end)]}
    with store.writing(conn):
        run = conn.execute(
            "INSERT INTO runs (name, driver, phase, created_at, started_at, ended_at, updated_at, actions, counts, "
            "groups, pools, group_counts, timeline) VALUES (?, 'big.main', 'succeeded', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (name, t0, t0, end, end, n + 1, json.dumps({"succeeded": n + 1}), json.dumps({"leaf": [n, CONCURRENCY]}),
             json.dumps({"map:leaf": CONCURRENCY}), json.dumps({"leaf": {"succeeded": n}}), json.dumps(timeline))).lastrowid
        task = store.task_id(conn, "big.leaf", "inline", "c0de")
        driver = store.task_id(conn, "big.main", "inline", "c0de")
        conn.execute("INSERT INTO actions (run, number, task, phase, attempts, queued_at, started_at, ended_at) "
                     "VALUES (?, 0, ?, 'succeeded', 1, ?, ?, ?)", (run, driver, t0, t0, end))
        conn.execute(
            "WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i + 1 < ?) "
            "INSERT INTO actions (run, number, parent, task, grp, map_index, phase, attempts, queued_at, started_at, "
            "ended_at, inputs, outputs) SELECT ?, i + 1, 0, ?, 'leaf', i, 'succeeded', 1, ?, ? + (i / ?) * ?, "
            "? + (i / ?) * ? + 0.003, x'80057d94', x'8005' FROM k",
            (n, run, task, t0, t0, CONCURRENCY, STEP, t0, CONCURRENCY, STEP))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # as the writer's batches leave it: no WAL of the whole run
    conn.close()


def test_the_run_view_of_a_million_actions_renders_at_once(browser, lab, artifacts):
    build_million_run(lab["home"])
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    requests: list[str] = []
    page.on("requestfinished", lambda r: requests.append(
        f"{time.monotonic() - started:.2f} s +{r.timing['responseEnd']:.0f} ms {r.url.split('?')[0][-50:]}")
        if "flyte-nb/api" in r.url else None)
    started = time.monotonic()
    page.goto(f"{lab['url']}/lab/workspaces/million?reset&token={TOKEN}")
    page.wait_for_function("window.jupyterapp && window.jupyterapp.commands.hasCommand('flyte-nb:open-run')",
                           timeout=60_000)
    page.evaluate("() => window.jupyterapp.restored.then(() => true)")  # the view is timed, not Lab's start
    page.wait_for_load_state("networkidle")
    detail = f'.flyte-nb-run-detail[data-run="{NAME}"][data-phase="succeeded"]'
    started = time.monotonic()
    opened = page.evaluate(f"async () => {{ const t = performance.now(); await window.jupyterapp.commands.execute("
                           f"'flyte-nb:open-run', {{name: '{NAME}'}}); return performance.now() - t; }}")
    requests.append(f"open-run command: {opened:.0f} ms, hidden={page.evaluate('document.hidden')}")
    page.wait_for_selector(f"{detail} .flyte-nb-timeline-row[data-series='leaf']", timeout=30_000)
    page.wait_for_selector(f"{detail} .flyte-nb-action-row", timeout=30_000)
    shown = time.monotonic() - started
    assert shown < 2.0, f"the run view took {shown:.2f} s; requests: {requests}"
    series = page.locator(f"{detail} .flyte-nb-timeline-row[data-series='leaf']")
    assert series.get_attribute("data-peak") == str(CONCURRENCY) and series.get_attribute("data-capacity") == "100"
    covered = series.locator("svg path.flyte-nb-timeline-line").evaluate(
        "p => { const b = p.getBBox(); const w = p.ownerSVGElement.viewBox.baseVal.width; return [b.x / w, (b.x + b.width) / w]; }")
    assert covered[0] < 0.01 and covered[1] > 0.99, covered  # from the run's start to its end
    assert page.locator(f"{detail} .flyte-nb-range").inner_text() == f"1–100 of {N + 1:,}".replace(",", "")
    for _ in range(2):  # next pages by keyset
        page.click(f"{detail} .flyte-nb-next")
    page.wait_for_selector(f'{detail} .flyte-nb-action-row[data-action="200"]', timeout=10_000)
    page.click(f"{detail} .flyte-nb-prev")
    page.wait_for_selector(f'{detail} .flyte-nb-action-row[data-action="100"]', timeout=10_000)
    page.screenshot(path=str(artifacts / "runs-panel-million.png"))
    assert errors == []
    page.close()
