"""``flyte.trace``, ``flyte.ctx()``, custom context, checkpoints for resumable retries, project and domain."""

from __future__ import annotations

import asyncio

import pytest

import flyte_nb as flyte

env = flyte.TaskEnvironment("ctx")
CALLS: list[str] = []


@flyte.trace
async def add(a: int, b: int) -> int:
    CALLS.append(f"add{a}{b}")
    return a + b


@flyte.trace
def mul(a: int, b: int) -> int:
    CALLS.append(f"mul{a}{b}")
    return a * b


@flyte.trace
async def count(n: int):
    for i in range(n):
        yield i


@flyte.trace
def squares(n: int):
    yield from (i * i for i in range(n))


@flyte.trace
async def boom() -> None:
    raise KeyError("traced boom")


@env.task
async def uses_traces() -> dict:
    out = {"add": await add(1, 2), "mul": mul(2, 3), "count": [i async for i in count(3)], "squares": list(squares(3))}
    try:
        await boom()
    except KeyError as error:
        out["boom"] = str(error)
    return out


def test_traced_helpers_of_every_kind_run_inside_tasks_and_keep_their_errors():
    assert flyte.run(uses_traces).outputs(timeout=10) == {
        "add": 3, "mul": 6, "count": [0, 1, 2], "squares": [0, 1, 4], "boom": "'traced boom'"}
    assert add.__name__ == "add" and mul(4, 5) == 20  # outside a task: a plain call


@env.task(retries=2)
async def resumes(fail_times: int) -> int:
    total = await add(10, 20)  # kept: the retry does not run it again
    if flyte.ctx().attempt_number < fail_times:
        raise ConnectionError("flaky")
    return total


def test_a_retry_reuses_what_traced_calls_returned_in_earlier_attempts():
    CALLS.clear()
    assert flyte.run(resumes, 2).outputs(timeout=10) == 30
    assert CALLS == ["add1020"]


@env.task
async def who_am_i() -> dict:
    c = flyte.ctx()
    return {"action": c.action.name, "run": c.action.run_name, "custom": flyte.get_custom_context(),
            "attempt": c.attempt_number, "mode": c.mode, "truthy": bool(c),
            "started": c.run_start_time.tzinfo is not None}


@env.task
def sync_who_am_i() -> dict:
    return {"custom": flyte.get_custom_context(), "action": flyte.ctx().action.name}


@env.task
async def passes_context() -> list:
    with flyte.custom_context(team="ml", stage="dev"):
        inner = await who_am_i()
        with flyte.custom_context(stage="prod"):
            overridden = await asyncio.gather(who_am_i(), sync_who_am_i.aio())
    after = await who_am_i()
    return [inner, *overridden, after]


def test_ctx_names_the_action_and_custom_context_reaches_the_actions_started_inside():
    run = flyte.run(passes_context)
    inner, overridden, sync, after = run.outputs(timeout=10)
    names = {a.name for a in run.actions}
    assert inner["run"] == run.name and inner["action"] in names and inner["action"] != run.actions[0].name
    assert inner["custom"] == {"team": "ml", "stage": "dev"} and inner["attempt"] == 0
    assert (inner["mode"], inner["truthy"], inner["started"]) == ("local", True, True)
    assert overridden["custom"] == sync["custom"] == {"team": "ml", "stage": "prod"}
    assert after["custom"] == {}


def test_run_context_custom_context_seeds_the_run_and_ctx_is_falsy_outside():
    assert flyte.with_runcontext(custom_context={"k": "v"}).run(who_am_i).outputs(timeout=10)["custom"] == {"k": "v"}
    assert not flyte.ctx() and flyte.ctx().action is None and flyte.get_custom_context() == {}
    with pytest.raises(flyte.ConfigurationError, match="strings"):
        with flyte.custom_context(n=1):
            pass


@env.task(retries=3)
def trains(steps: int) -> list:
    """Saves progress after every step; a retry resumes from the last checkpoint."""
    checkpoint = flyte.ctx().checkpoint
    restored = checkpoint.load_sync()
    done = [int(s) for s in restored.read_text().split()] if restored else []
    ran = []
    for step in range(len(done), steps):
        ran.append(step)
        done.append(step)
        checkpoint.save_sync(" ".join(map(str, done)).encode())
        if step in (1, 3) and flyte.ctx().attempt_number < 2:  # fails twice mid-way
            raise RuntimeError(f"crash after step {step}")
    return [flyte.ctx().attempt_number, done, ran]


def test_checkpoints_let_a_retry_resume_where_the_last_attempt_stopped():
    run = flyte.run(trains, 5)
    assert run.outputs(timeout=10) == [2, [0, 1, 2, 3, 4], [4]]  # the third attempt ran only the last step
    assert run.actions[0].attempts == 3


@env.task
async def checkpoints_a_folder(tmp: str) -> list:
    import pathlib

    checkpoint = flyte.ctx().checkpoint
    if flyte.ctx().attempt_number == 0:
        folder = pathlib.Path(tmp)
        (folder / "weights.bin").write_bytes(b"\x01\x02")
        await checkpoint.save(folder)
        raise RuntimeError("first attempt fails")
    restored = await checkpoint.load()
    return sorted(p.name for p in restored.iterdir())


def test_a_folder_checkpoint_is_restored_as_a_folder(tmp_path):
    retried = checkpoints_a_folder.override(retries=1)
    (tmp_path / "model").mkdir()
    assert flyte.run(retried, str(tmp_path / "model")).outputs(timeout=10) == ["weights.bin"]


def test_project_and_domain_come_from_init():
    from flyte_nb.engine.kernel import kernel

    names = kernel().project_names
    names.update(project=None, domain=None)  # other tests call init(project=...)
    assert (flyte.current_project(), flyte.current_domain()) == ("default", "development")
    flyte.init(project="flytesnacks", domain="staging")
    try:
        assert (flyte.current_project(), flyte.current_domain()) == ("flytesnacks", "staging")
    finally:
        names.update(project=None, domain=None)
