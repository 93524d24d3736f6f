"""One action in a fresh container of the docker backend: ``PREFIX.in`` in, ``PREFIX.out`` out.

The container's command is a short bootstrap (``docker.runtime._BOOT``) that makes ``flyte_nb`` a lazy
package (its ``__init__`` runs only if the task touches ``flyte_nb.<name>``), so a cold action pays
for cloudpickle and this module, not for the whole API. What the body prints goes to the
container's stdout/stderr (unbuffered), which the kernel streams from the container's logs.

``PREFIX.in`` holds ``("run", action, key, function bytes, inputs)`` like the process worker's
message; ``PREFIX.out`` gets ``(ok, payload, traceback text)``, written atomically.
"""

from __future__ import annotations

import inspect
import os
import sys
from typing import Any

from ..data.serialization import dumps, loads, ship_error, ship_output
from ..errors import user_traceback


async def _wait(awaitable: Any) -> Any:
    return await awaitable


def run(prefix: str) -> None:
    with open(prefix + ".in", "rb") as file:
        _, _action, _key, function_bytes, inputs = loads(file.read())
    try:
        func = loads(function_bytes)
        args, kwargs = loads(inputs)
        result = func(*args, **kwargs)
        if inspect.isawaitable(result):
            import asyncio

            result = asyncio.run(_wait(result))
        reply = (True, ship_output(result, getattr(func, "__name__", "task")), "")
    except BaseException as error:  # noqa: BLE001 - every failure goes back to the kernel
        reply = (False, ship_error(error), user_traceback(error))
    sys.stdout.flush()
    sys.stderr.flush()
    with open(prefix + ".out.tmp", "wb") as file:
        file.write(dumps(reply))
    os.replace(prefix + ".out.tmp", prefix + ".out")


def main(argv: list[str]) -> None:
    run(argv[0])
