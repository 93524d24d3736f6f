"""Tasks that ask who they are, report, trace and checkpoint: driver and children in ONE environment.

Defined inside ``build`` so that they travel by value (a container cannot import this module).
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from types import SimpleNamespace
from typing import Any

import cloudpickle

import flyte_nb as flyte

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def build(name: str, **options: Any) -> SimpleNamespace:
    env = flyte.TaskEnvironment(name, **options)

    def me() -> dict:
        c = flyte.ctx()
        return {"action": c.action.name, "run": c.action.run_name, "attempt": c.attempt_number,
                "custom": dict(c.custom_context), "got": flyte.get_custom_context(),
                "project": c.action.project, "started": c.run_start_time is not None}

    @env.task
    async def child(i: int) -> dict:
        await flyte.report.log.aio(f"<p>child {i}</p>")
        return me()

    @env.task
    def child_sync(i: int) -> dict:
        flyte.report.get_tab("numbers").log(f"<b>{i * i}</b>")
        return me()

    @env.task
    async def driver(n: int) -> dict:
        flyte.report.log("<h1>driver started</h1>")
        with flyte.custom_context(team="blue"):
            children = await asyncio.gather(*(child(i) for i in range(n)), child_sync.aio(n))
        flyte.report.get_tab("summary").replace("<i>done</i>")
        flyte.report.flush()
        return {"me": me(), "children": list(children)}

    @flyte.trace
    async def stamp(step: str) -> str:
        return f"{step}-{uuid.uuid4().hex}"

    @flyte.trace
    def stamp_sync(step: str) -> str:
        return f"{step}-{uuid.uuid4().hex}"

    @env.task(retries=1)
    async def resumable(label: str) -> dict:
        c = flyte.ctx()
        first = await stamp(label)
        second = stamp_sync(label)
        previous = await c.checkpoint.load()
        if c.attempt_number == 0:
            await c.checkpoint.save(f"{first}|{second}".encode())
            flyte.report.log("<p>attempt 1 failed on purpose</p>")
            raise ValueError("first attempt fails")
        return {"first": first, "second": second, "attempt": c.attempt_number,
                "previous": previous.read_text() if previous is not None else None}

    @env.task
    async def resumes(label: str) -> dict:
        return await resumable(label)

    return SimpleNamespace(**{k: v for k, v in locals().items() if k not in ("env", "name", "options", "me")})
