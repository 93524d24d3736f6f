"""Functions defined in notebook cells travel by value to worker processes (real kernel)."""

from __future__ import annotations

from tests.notebook.kernel import Kernel

CELL = '''
import os
import flyte_nb as flyte

OFFSET = 1000  # a notebook global the task uses

class Point:  # a class defined in the notebook
    def __init__(self, x):
        self.x = x

env = flyte.TaskEnvironment("nb-process", backend="process", concurrency=2)

@env.task
def shift(i: int) -> tuple:
    return Point(i + OFFSET).x, os.getpid()

@flyte.TaskEnvironment("nb-driver").task
async def main(n: int) -> list:
    return list(flyte.map(shift, range(n), concurrency=2))

run = flyte.run(main, 6)
values = run.outputs()
print([v for v, _ in values], len({pid for _, pid in values}), os.getpid() in {pid for _, pid in values})
'''


def test_a_notebook_defined_task_runs_in_worker_processes(tmp_path):
    kernel = Kernel(tmp_path)
    try:
        reply = kernel.execute(CELL, timeout=120)
        assert reply.status == "ok", reply.error
        assert reply.stdout == "[1000, 1001, 1002, 1003, 1004, 1005] 2 False\n"
    finally:
        kernel.close()
