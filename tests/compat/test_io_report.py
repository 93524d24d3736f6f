"""``flyte.io`` File/Dir over local storage, ``flyte.report`` kept per action, secrets and triggers."""

from __future__ import annotations

import os
from datetime import datetime, timezone

import pytest

import flyte_nb as flyte
from flyte_nb.io import Dir, File

env = flyte.TaskEnvironment("io")
workers = flyte.TaskEnvironment("io-workers", backend="process", concurrency=1)


@pytest.fixture(autouse=True, scope="module")
def no_idle_workers_left():
    yield
    from flyte_nb.backends.base import get_backend
    from flyte_nb.engine.loop import engine

    engine().submit(get_backend("process").shutdown()).result(timeout=30)


@env.task
async def writes() -> File:
    file = File.new_remote("greeting.txt")
    async with file.open("wb") as handle:
        await handle.write(b"hello\nworld\n")
    return file


@env.task
async def reads(file: File) -> list:
    async with file.open("rb") as handle:
        lines = [line async for line in handle]
    local = await file.download()
    return [lines, open(local, "rb").read() == b"hello\nworld\n", local != file.path, await file.exists()]


def reads_sync(file: File) -> str:
    with file.open_sync("r") as handle:
        return handle.read().upper()


READS_IN_WORKER = workers.task(reads_sync)


@env.task
async def uploads(folder: str) -> Dir:
    return await Dir.from_local(folder)


@env.task
async def walks(folder: Dir) -> list:
    return [[f.name async for f in folder.walk()], [f.name for f in folder.walk_sync(recursive=False)],
            [f.name for f in folder.walk_sync(file_pattern="*.csv")], (await folder.get_file("a.csv")).name]


@env.task
async def pipeline(folder: str) -> list:
    file = await writes()
    copied = await uploads(folder)
    return [await reads(file), await READS_IN_WORKER.aio(file), await walks(copied), copied.path != folder]


def test_files_and_dirs_pass_between_tasks_and_processes(tmp_path):
    source = tmp_path / "source"
    (source / "nested").mkdir(parents=True)
    (source / "a.csv").write_text("1,2")
    (source / "b.txt").write_text("b")
    (source / "nested" / "c.csv").write_text("3,4")
    result = flyte.run(pipeline, str(source)).outputs(timeout=60)
    assert result == [[[b"hello\n", b"world\n"], True, True, True], "HELLO\nWORLD\n",
                      [["a.csv", "b.txt", "c.csv"], ["a.csv", "b.txt"], ["a.csv", "c.csv"], "a.csv"], True]


def test_from_local_copies_into_the_home_and_remote_uris_are_refused(tmp_path, flyte_home):
    local = tmp_path / "data.bin"
    local.write_bytes(b"\x00\x01")
    file = File.from_local_sync(local, hash_method="given")
    assert file.path.startswith(str(flyte_home)) and file.name == "data.bin" and file.hash == "given"
    local.unlink()
    assert open(file.download_sync(tmp_path / "back.bin"), "rb").read() == b"\x00\x01"
    with pytest.raises(flyte.ConfigurationError, match="s3:// URI"):
        File.from_existing_remote("s3://bucket/key").exists_sync()
    assert File.named_remote("model.pt").path == File.named_remote("model.pt").path
    assert Dir.empty().is_empty and not Dir.new_remote().is_empty


@env.task(report=True)
async def reporting() -> int:
    await flyte.report.log.aio("<h1>Training</h1>")
    flyte.report.log("<p>epoch 1</p>")
    tab = flyte.report.get_tab("metrics")
    tab.log("<b>loss 0.5</b>")
    tab.replace("<b>loss 0.1</b>")
    flyte.report.Timeline("timeline").row(label="step", meta="1 ms")
    await flyte.report.flush.aio()
    return 1


@env.task
async def reporting_driver() -> int:
    flyte.report.replace("<p>driver</p>")
    return await reporting()


def test_reports_are_kept_per_action_with_their_tabs():
    run = flyte.run(reporting_driver)
    assert run.outputs(timeout=30) == 1
    pages = flyte.report.reports_of(run)
    driver, child = (a.name for a in sorted(run.actions, key=lambda a: a.number))
    assert set(pages) == {driver, child}
    assert "<p>driver</p>" in pages[driver] and "Training" not in pages[driver]
    page = pages[child]
    assert page.index("<h1>Training</h1>") < page.index("<p>epoch 1</p>")
    assert "loss 0.1" in page and "loss 0.5" not in page and 'data-tab="metrics"' in page and "step" in page
    assert flyte.report.current_report().name == "dummy"  # outside a task: a throwaway


secret_env = flyte.TaskEnvironment("io-secrets", secrets=["nb-token", flyte.Secret("db-pass", group="pg",
                                                                                     as_env_var="PGPASSWORD")])


@secret_env.task
async def uses_secrets() -> list:
    return [os.environ["NB_TOKEN"], os.environ["PGPASSWORD"]]


def test_secrets_come_from_the_environment_or_the_secrets_folder(flyte_home, monkeypatch):
    monkeypatch.setenv("NB_TOKEN", "from-env")
    (flyte_home / "secrets" / "pg").mkdir(parents=True)
    (flyte_home / "secrets" / "pg" / "db-pass").write_text("from-file\n")
    assert flyte.run(uses_secrets).outputs(timeout=30) == ["from-env", "from-file"]
    assert "PGPASSWORD" not in os.environ
    monkeypatch.delenv("NB_TOKEN")
    with pytest.raises(flyte.ConfigurationError, match=r"secret 'nb-token' is missing: set env var NB_TOKEN .*secrets/nb-token"):
        flyte.run(uses_secrets).outputs(timeout=30)


nightly = flyte.Trigger("nightly", flyte.Cron("0 3 * * *"), inputs={"start": flyte.TriggerTime, "limit": 5})


@env.task(triggers=nightly)
async def scheduled(start: datetime, limit: int, note: str = "") -> list:
    return [start.tzinfo is not None, limit, note]


def test_triggers_are_accepted_and_fill_inputs_when_run_by_hand():
    before = datetime.now(timezone.utc)
    assert flyte.run(scheduled).outputs(timeout=30) == [True, 5, ""]
    assert flyte.run(scheduled, limit=2, note="x").outputs(timeout=30) == [True, 2, "x"]
    assert scheduled.triggers == (nightly,) and before.tzinfo is not None
    assert flyte.Trigger.hourly("start").inputs == {"start": flyte.TriggerTime}
    flyte.Trigger("every5", flyte.FixedRate(5))
    with pytest.raises(flyte.ConfigurationError, match="five fields"):
        flyte.Cron("daily")
    with pytest.raises(flyte.ConfigurationError, match="TriggerTime"):
        flyte.Trigger("bad", None, inputs={"t": flyte.TriggerTime})


def test_a_mounted_secret_is_accepted_but_not_an_env_var():
    mounted = flyte.Secret(key="v2", group="arn:aws:secretsmanager:us-east-2:1:secret", mount="/etc/flyte/secrets")
    assert mounted.as_env_var is None
    from flyte_nb.secrets import secret_variables

    assert secret_variables((mounted,)) == {}


@env.task
async def adds(a: int, b: int) -> int:
    return a + b


@env.task
async def forwards() -> list:
    return [await adds.forward(1, 2), await adds(3, 4)]


def test_forward_calls_the_function_without_an_action_and_with_runcontext_takes_the_sdk_options():
    run = flyte.with_runcontext("local", debug=False, interruptible=True, max_action_concurrency=4).run(forwards)
    assert run.outputs(timeout=30) == [3, 7]
    assert [a.task for a in run.actions] == ["io.forwards", "io.adds"]  # forward made no action


def test_show_renders_a_runs_reports_in_the_notebook():
    run = flyte.run(reporting_driver)
    run.wait()
    shown = flyte.report.show(run)
    assert len(shown) == 2 and all("srcdoc=" in item.data and "report of a" in item.data for item in shown)
    assert "loss 0.1" in "".join(item.data for item in shown)
