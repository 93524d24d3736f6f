"""What a type checker must infer for task calls (``TaskTemplate`` is generic over P and R).

Checked by ``tests/api/test_typing.py`` with mypy or pyright when one is installed; at run time
``assert_type`` does nothing, and outside a run a task call is a plain call.
"""

from __future__ import annotations

from typing import assert_type

import flyte_nb as flyte

env = flyte.TaskEnvironment("typing-cases")


@env.task
def add(x: int, y: int = 1) -> int:
    return x + y


@env.task
async def shout(text: str) -> str:
    return text.upper()


assert_type(add(1), int)
assert_type(add(1, y=2), int)


async def caller() -> None:
    assert_type(await shout("a"), str)
    assert_type(await shout.aio("a"), str)
    assert_type(await add.aio(2), int)
