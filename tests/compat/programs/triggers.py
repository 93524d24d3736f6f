"""A scheduled task run by hand: its trigger's inputs fill what the call leaves out."""

from datetime import datetime

import flyte

env = flyte.TaskEnvironment("triggers")
nightly = flyte.Trigger("nightly", flyte.Cron("0 3 * * *"), inputs={"start": flyte.TriggerTime, "limit": 5})


@env.task(triggers=nightly)
async def main(start: datetime, limit: int) -> list:
    return [isinstance(start, datetime), limit]
