"""The actions listing says why an action waits ("waiting for rate llm") and how long each wait took."""

from __future__ import annotations

import time

from tests.server.conftest import run_script

SLOW = """
import asyncio
import flyte_nb as flyte

env = flyte.TaskEnvironment("waits")

@env.task(tags=["llm"])
async def ask(i: int) -> int:
    return i

@env.task
async def fan(n: int) -> list[int]:
    return list(await asyncio.gather(*(ask(i) for i in range(n))))

run = flyte.with_runcontext(name="waiting-run", throttle={"llm": flyte.Rate(2, per="1s")}).run(fan, 6)
assert run.outputs(timeout=60) == list(range(6))
"""


def test_a_waiting_action_shows_its_reason_and_every_wait_its_length(server, client):
    process = run_script(server["home"], SLOW, wait=False)
    try:
        deadline, reasons = time.monotonic() + 60, set()
        while not reasons:
            assert time.monotonic() < deadline and process.poll() is None, "no action was seen waiting for its rate"
            status, page, _ = client.get("runs/waiting-run/actions?phase=waiting")
            if status == 200:
                reasons = {a["reason"] for a in page["actions"]}
            time.sleep(0.1)
        assert reasons == {"waiting for rate llm"}
    finally:
        assert process.wait(60) == 0, process.stdout.read()
    status, page, _ = client.get("runs/waiting-run/actions")
    assert status == 200
    children = [a for a in page["actions"] if a["number"] > 0]
    assert all(a["reason"] is None for a in page["actions"]), "none waits any more"
    waited = [a for a in children if a["waited"]]
    assert len(waited) == 5, "the first child started at once"
    for action in waited:
        (wait,) = action["waited"]
        assert wait["reason"] == "waiting for rate llm" and wait["pool"] == "rate:llm"
        assert wait["seconds"] is not None and abs(wait["at"] + wait["seconds"] - action["started_at"]) < 1e-3
    assert max(a["waited"][0]["seconds"] for a in waited) >= 2.0, "the last waited for 5 grants at 2/s"
    status, detail, _ = client.get(f"runs/waiting-run/actions/{waited[0]['number']}")
    assert status == 200 and detail["waited"] == waited[0]["waited"]
