"""A task call keeps its function's type: TaskTemplate is generic over parameters and return type.

No type checker is installed here (none is a dependency), so this reads the annotations that a
checker would use: ``@env.task`` turns a ``Callable[P, R]`` into a ``TaskTemplate[P, R]`` whose
``__call__`` takes ``P`` and returns ``R``, and whose ``aio`` returns a coroutine of the result.
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import subprocess
import sys
import typing
from collections.abc import Callable, Coroutine
from pathlib import Path

import pytest

import flyte_nb as flyte
from flyte_nb.api import task as task_module
from flyte_nb.api.environment import TaskEnvironment
from flyte_nb.api.task import TaskTemplate

P, R, T = task_module.P, task_module.R, task_module.T


def _hints(fn) -> dict:
    return typing.get_type_hints(fn, vars(task_module) | {"TaskTemplate": TaskTemplate})


def test_task_template_is_generic_over_parameters_and_result():
    assert TaskTemplate.__parameters__ == (P, R)
    call = _hints(TaskTemplate.__call__)
    assert call["return"] is R and call["args"] == P.args and call["kwargs"] == P.kwargs
    assert _hints(TaskTemplate.forward)["return"] is R
    assert TaskTemplate[[int], str].__args__ == ((int,), str)


def test_env_task_returns_a_task_of_the_decorated_function_type():
    from flyte_nb.api import environment

    bare, with_options = typing.get_overloads(TaskEnvironment.task)
    hints = typing.get_type_hints(bare, vars(environment))
    assert hints["_func"] == Callable[environment.P, environment.R]
    assert hints["return"] == TaskTemplate[environment.P, environment.R]
    decorator = typing.get_type_hints(with_options, vars(environment))["return"]
    assert decorator == Callable[[Callable[environment.P, environment.R]], TaskTemplate[environment.P, environment.R]]


def test_aio_of_an_async_task_awaits_to_its_result():
    on_async, on_sync = typing.get_overloads(TaskTemplate.aio)
    assert _hints(on_async)["self"] == TaskTemplate[P, Coroutine[typing.Any, typing.Any, T]]
    assert _hints(on_async)["return"] == Coroutine[typing.Any, typing.Any, T]
    assert _hints(on_sync)["return"] == Coroutine[typing.Any, typing.Any, T]


env = flyte.TaskEnvironment("typing")


@env.task
def shout(word: str, times: int = 1) -> str:
    return word.upper() * times


def test_a_typed_task_still_runs():
    assert isinstance(shout, TaskTemplate)
    assert shout("a", 2) == "AA" and flyte.run(shout, "b").outputs(timeout=30) == "B"


def test_the_typing_cases_run_as_plain_calls():
    from tests.api import typing_cases

    asyncio.run(typing_cases.caller())


def test_a_type_checker_infers_each_task_call():
    """``typing_cases.py``'s ``assert_type`` lines, through mypy or pyright when either is installed."""
    cases = Path(__file__).parent / "typing_cases.py"
    if importlib.util.find_spec("mypy") is not None:
        command = [sys.executable, "-m", "mypy", "--ignore-missing-imports", "--follow-imports=silent", str(cases)]
    elif shutil.which("pyright"):
        command = ["pyright", str(cases)]
    else:
        pytest.skip("neither mypy nor pyright is installed here")
    done = subprocess.run(command, cwd=Path(__file__).parents[2], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
