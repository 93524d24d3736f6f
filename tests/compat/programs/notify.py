"""Notifications on a run and on a trigger, the way the SDK's notification examples declare them."""

import flyte
from flyte import notify
from flyte.models import ActionPhase

env = flyte.TaskEnvironment(name="notify_program")

ALERTS = (
    notify.Slack(on_phase=ActionPhase.SUCCEEDED, webhook_url="https://hooks.slack.com/x",
                 blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "{{.Run.Name}}"}}]),
    notify.Email(on_phase=[ActionPhase.FAILED, ActionPhase.TIMED_OUT], recipients=["oncall@example.com"]),
    notify.Teams(on_phase=ActionPhase.ABORTED, webhook_url="https://teams.example.com/x"),
    notify.Webhook(on_phase=ActionPhase.FAILED, url="https://example.com/hook", headers={"X": "1"}),
    notify.NamedDelivery(on_phase=ActionPhase.FAILED, name="slack-oncall"),
)


@env.task(triggers=flyte.Trigger(name="hourly", automation=flyte.Cron("0 * * * *"),
                                 notifications=notify.NamedRule("oncall-alerts")))
async def add(x: int, y: int) -> int:
    return x + y


@env.task
async def main() -> list:
    refused = ""
    try:
        notify.Email(on_phase=ActionPhase.RUNNING, recipients=["a@example.com"])
    except ValueError as error:  # the SDK raises ValueError; flyte_nb's ConfigurationError is one
        refused = "refused"
    phases = [phase.value for alert in ALERTS for phase in alert.on_phase]
    return [await add(2, 3), phases, ALERTS[1].recipients, refused]


if __name__ == "__main__":
    flyte.init()
    print(flyte.with_runcontext(notifications=ALERTS).run(main).outputs())
