"""A task that checkpoints after each step; its retry resumes from the last checkpoint."""

import flyte

env = flyte.TaskEnvironment("checkpoints")
RAN = []


@env.task(retries=2)
def train(steps: int) -> list:
    checkpoint = flyte.ctx().checkpoint
    restored = checkpoint.load_sync()
    done = restored.read_text().split() if restored else []
    for step in range(len(done), steps):
        RAN.append(step)
        done.append(str(step))
        checkpoint.save_sync(" ".join(done).encode())
        if step == 2 and len(RAN) == 3:
            raise RuntimeError("preempted after step 2")
    return [len(done), list(RAN)]


@env.task
async def main() -> list:
    return await train.aio(5)
