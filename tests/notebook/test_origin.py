"""A run started in a real kernel records where it came from: notebook, kernel and cell."""

from __future__ import annotations

import sqlite3
import uuid

import pytest

from flyte_nb.data.store import DB_NAME
from tests.notebook.kernel import Kernel


@pytest.fixture
def kernel_home(tmp_path):
    return tmp_path


def test_a_run_records_its_notebook_kernel_and_cell(kernel_home):
    kernel_id = str(uuid.uuid4())
    notebook = str(kernel_home / "work" / "analysis.ipynb")
    kernel = Kernel(kernel_home, env={"JPY_SESSION_NAME": notebook}, kernel_id=kernel_id)
    try:
        kernel.ok("""
            import flyte_nb as flyte
            env = flyte.TaskEnvironment("origin")

            @env.task
            def one() -> int:
                return 1
        """)
        first = kernel.ok("run = flyte.run(one); run.wait(); print(run.name); print(run.url)", metadata={"cellId": "cell-42"})
        kernel.ok("flyte.run(one).wait()")  # a request without a cell id
    finally:
        kernel.close(graceful=True)  # a shutdown, as Jupyter does it: the writer commits what it holds
    with sqlite3.connect(kernel_home / "flyte_nb" / DB_NAME) as conn:  # the kernel's FLYTE_NB_HOME
        rows = conn.execute("SELECT notebook, kernel, cell FROM runs ORDER BY id").fetchall()
    assert rows == [(notebook, kernel_id, "cell-42"), (notebook, kernel_id, None)]
    # no Jupyter server started this kernel: the link names the store file and the run
    name, url = first.stdout.split()
    assert url == f"{(kernel_home / 'flyte_nb' / DB_NAME).as_uri()}#run={name}"
