"""A task call keeps its type for a type checker (``tests/typing/task_calls.py``).

Runs mypy or pyright when one is installed next to this Python; neither is a dependency, so the
test is skipped without one (say so rather than pass).
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CASES = Path(__file__).parent / "typing" / "task_calls.py"
ROOT = Path(__file__).parent.parent


def test_the_cases_run_as_plain_calls():
    from tests.typing import task_calls

    asyncio.run(task_calls.caller())


def test_a_type_checker_infers_each_task_call():
    if importlib.util.find_spec("mypy") is not None:
        command = [sys.executable, "-m", "mypy", "--ignore-missing-imports", "--follow-imports=silent", str(CASES)]
    elif shutil.which("pyright"):
        command = ["pyright", str(CASES)]
    else:
        pytest.skip("neither mypy nor pyright is installed here")
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
