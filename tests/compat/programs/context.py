"""flyte.ctx() and custom_context passed down to child actions."""

import flyte

env = flyte.TaskEnvironment("contexts")


@env.task
async def child() -> dict:
    ctx = flyte.ctx()
    return {"custom": flyte.get_custom_context(), "has_action": bool(ctx.action.name),
            "same_run": ctx.action.run_name is not None}


@env.task
async def main() -> dict:
    with flyte.custom_context(team="ml", stage="dev"):
        inside = await child()
    outside = await child()
    return {"inside": inside, "outside": outside["custom"], "in_task": bool(flyte.ctx())}
