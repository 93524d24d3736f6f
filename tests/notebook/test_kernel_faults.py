"""Faults in a real kernel (issue 18): a child's sys.exit() and a run that fails at once."""

from __future__ import annotations

import pytest

from tests.notebook.kernel import Kernel

SETUP = """
%load_ext flyte_nb
import sys, asyncio
import flyte_nb as flyte
env = flyte.TaskEnvironment("kernel-faults")

@env.task
def leaves(code: int) -> int:
    sys.exit(code)

@env.task
async def fine(i: int) -> int:
    return i + 1
"""


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    k = Kernel(tmp_path_factory.mktemp("faults-kernel"))
    try:
        k.ok(SETUP)
        yield k
    finally:
        k.close()


def test_a_run_cell_whose_child_calls_sys_exit_fails_clearly_and_the_next_run_works(kernel):
    """A SystemExit in a child stopped the engine thread: the cell hung, later runs stayed queued."""
    outputs, error = kernel.call("%%run --name exits\nawait leaves.aio(2)", timeout=60)
    assert error is not None and error["ename"] == "TaskExitError", (error, outputs.text)
    assert "SystemExit(2)" in error["evalue"] and "sys.exit()" in error["evalue"]
    outputs, error = kernel.call("%%run --name exits-in-map\nlist(flyte.map(leaves, [1, 2], return_exceptions=False))",
                                 timeout=60)
    assert error is not None and error["ename"] == "TaskExitError", (error, outputs.text)
    after = kernel.ok("%%run --name after-exit\nsum(flyte.map(fine, range(4)))", timeout=60)
    assert after.result == "10"
    assert kernel.ok("print(flyte.get_run('exits').phase)").stdout == "failed\n"


def _texts(outputs) -> list[str]:
    return [m["content"]["data"]["text/plain"] for m in outputs
            if m["msg_type"] in ("display_data", "update_display_data") and "text/plain" in m["content"]["data"]]


def test_a_run_cell_that_fails_at_once_keeps_its_final_summary(kernel):
    """The text a saved notebook keeps was the summary at display time: 'queued'."""
    outputs, error = kernel.call('%%run --name fails-at-once\nraise ValueError("at once")', timeout=60)
    assert error is not None and error["ename"] == "ValueError"
    texts = _texts(outputs)
    assert texts, outputs.text
    assert texts[-1] == "Run fails-at-once: failed · 1 failed"
    html = [m["content"]["data"]["text/html"] for m in outputs if m["msg_type"] == "update_display_data"]
    assert html and "failed" in html[-1] and "at once" in html[-1]


def test_a_run_cell_that_succeeds_keeps_its_final_summary(kernel):
    outputs = kernel.ok("%%run --name quick-one\nawait fine(1)", timeout=60)
    assert _texts(outputs)[-1] == "Run quick-one: succeeded · 2 succeeded"  # the cell and its child
    assert outputs.result == "2"
