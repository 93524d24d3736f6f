"""``flyte.ctx()``, ``flyte.report``, ``flyte.trace`` and checkpoints in task bodies on every backend.

A body in a worker (process, container, Dask) has no action of its own: the kernel tells each
attempt who it is, and what the body keeps (report changes, traced results, checkpoints) goes
back to the kernel, so it is the same as in the kernel — including a retry in another container.
"""

from __future__ import annotations

import pytest

import flyte_nb as flyte
from flyte_nb import Phase
from tests.backends.context_tasks import build
from tests.backends.test_dask import cluster  # noqa: F401 - the fixture, shared
from tests.backends.test_nesting import BACKENDS, _options

_built: dict[str, object] = {}


@pytest.fixture(params=BACKENDS)
def tasks(request):
    backend = request.param
    if backend == "dask":
        request.getfixturevalue("cluster")
        options = {"backend": "dask", "concurrency": 8}
    else:
        options = _options(backend)
    if backend not in _built:
        _built[backend] = build(f"ctx-{backend}", **options)
    return _built[backend]


def test_a_body_knows_its_action_run_and_custom_context(tasks):
    run = flyte.run(tasks.driver, 2)
    result = run.outputs(timeout=90)
    names = {a.name: a for a in run.actions}
    root = run.actions[0]
    assert result["me"]["action"] == root.name and result["me"]["run"] == run.name
    assert result["me"]["custom"] == {} and result["me"]["attempt"] == 0 and result["me"]["started"]
    assert result["me"]["project"] == flyte.current_project()
    assert len(result["children"]) == 3
    for seen in result["children"]:
        assert seen["run"] == run.name
        assert names[seen["action"]].parent is root  # the kernel's own name for that child
        assert seen["custom"] == seen["got"] == {"team": "blue"}  # passed down from the driver's block
    assert len({seen["action"] for seen in result["children"]}) == 3


def test_reports_written_in_workers_are_kept_by_the_kernel(tasks):
    run = flyte.run(tasks.driver, 2)
    run.outputs(timeout=90)
    pages = flyte.report.reports_of(run)
    root, *children = run.actions
    assert "driver started" in pages[root.name] and "<i>done</i>" in pages[root.name]
    assert 'data-tab="summary"' in pages[root.name]
    by_task = {a.name: a.task.rsplit(".", 1)[-1] for a in children}
    for action, task in by_task.items():
        if task == "child":
            assert "<p>child" in pages[action]
        else:
            assert 'data-tab="numbers"' in pages[action] and "<b>4</b>" in pages[action]


def test_a_retry_resumes_from_its_checkpoint_and_reuses_traced_results(tasks):
    run = flyte.run(tasks.resumes, "step")
    result = run.outputs(timeout=120)
    assert result["attempt"] == 1
    assert result["previous"] == f"{result['first']}|{result['second']}"  # the first attempt's checkpoint
    child = run.actions[1]
    assert child.attempts == 2 and child.phase == Phase.SUCCEEDED
    assert "attempt 1 failed on purpose" in flyte.report.reports_of(run)[child.name]
