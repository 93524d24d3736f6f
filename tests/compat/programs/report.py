"""flyte.report from a task with report=True."""

import flyte
import flyte.report

env = flyte.TaskEnvironment("reports")


@env.task(report=True)
async def main() -> str:
    await flyte.report.log.aio("<h1>Training</h1>", do_flush=True)
    tab = flyte.report.get_tab("metrics")
    tab.log("<p>loss 0.1</p>")
    await flyte.report.replace.aio("<h1>Done</h1>")
    await flyte.report.flush.aio()
    return "reported"
