"""History survives the kernel: runs recorded by one process read back by others, and bad input."""

from __future__ import annotations

import json
import sqlite3

import pytest

import flyte_nb as flyte
from flyte_nb import Phase
from flyte_nb.data.store import DB_NAME

from .conftest import run_child
from .store_tasks import pipeline

WRITER = """
import asyncio, json
import flyte_nb as flyte
from tests.data.store_tasks import home, pipeline, third_time_lucky

env = flyte.TaskEnvironment("cell")

class Reading:                      # defined in __main__, like a class in a notebook cell
    def __init__(self, sensor, values):
        self.sensor, self.values = sensor, values

@env.task
async def measure(sensor: str, scale: float = 2.0) -> Reading:
    return Reading(sensor, [scale * i for i in range(3)])

@env.task
async def driver(sensors: list) -> dict:
    readings = await asyncio.gather(*(measure(s) for s in sensors))
    retried = await third_time_lucky("k")
    return {"readings": readings, "retried": retried, "pipeline": await pipeline(3)}

ok = flyte.run(driver, ["a", "b"])
value = ok.outputs()
(home() / "fail-1").write_text("")
bad = flyte.run(pipeline, 3)
try:
    bad.outputs()
except ValueError:
    pass
print(json.dumps({"ok": ok.name, "bad": bad.name, "retried": value["retried"], "pipeline": value["pipeline"],
                  "values": [r.values for r in value["readings"]]}))
"""

READER = """
import json
import flyte_nb as flyte
names = %r
ok, bad = flyte.get_run(names["ok"]), flyte.get_run(names["bad"])
value = ok.outputs()
try:
    bad.outputs()
    error = None
except ValueError as e:
    error = str(e)
print(json.dumps({"kind": type(ok).__name__, "values": [r.values for r in value["readings"]],
                  "sensors": [r.sensor for r in value["readings"]], "pipeline": value["pipeline"],
                  "error": error, "runs": [r.name for r in flyte.runs()]}))
"""


@pytest.fixture
def recorded(tmp_path, home):
    """Runs recorded by a process that has exited (a kernel restart)."""
    return run_child(tmp_path, home, WRITER)


def test_runs_read_back_after_the_kernel_exited(recorded):
    ok = flyte.get_run(recorded["ok"])
    assert isinstance(ok, flyte.StoredRun) and ok.phase == "succeeded" and ok.done()
    value = ok.outputs()
    # a class defined in the writer's __main__ travelled by value: readable without its definition
    assert [r.values for r in value["readings"]] == recorded["values"] == [[0.0, 2.0, 4.0]] * 2
    assert [r.sensor for r in value["readings"]] == ["a", "b"]
    assert value["retried"] == recorded["retried"] == "k after 3"
    assert value["pipeline"] == recorded["pipeline"]
    assert ok.inputs() == {"sensors": ["a", "b"]}
    assert ok.driver == "cell.driver" and ok.duration > 0 and ok.counts["succeeded"] == len(ok.actions)


def test_a_second_process_reads_the_same_history(recorded, tmp_path, home):
    seen = run_child(tmp_path, home, READER % (recorded,))
    assert seen["kind"] == "StoredRun"
    assert seen["values"] == recorded["values"] and seen["sensors"] == ["a", "b"]
    assert seen["pipeline"] == recorded["pipeline"]
    assert seen["error"].startswith("item 1 is bad")
    assert seen["runs"] == [recorded["bad"], recorded["ok"]]  # newest first


def test_actions_inputs_outputs_groups_and_tags_are_recorded(recorded):
    ok = flyte.get_run(recorded["ok"])
    by_task: dict[str, list] = {}
    for action in ok.actions:
        by_task.setdefault(action.task, []).append(action)
    measures = by_task["cell.measure"]
    assert [a.inputs() for a in measures] == [{"sensor": "a", "scale": 2.0}, {"sensor": "b", "scale": 2.0}]
    assert all(a.parent_name == "a0" and a.backend in (None, "inline") for a in measures)
    assert [a.output() for a in by_task["store_tests.maybe_fail"]] == [100, 101, 102]
    assert {a.group_name for a in by_task["store_tests.maybe_fail"]} == {"add"}
    assert {a.group_name for a in by_task["store_tests.cached_square"]} == {"cached_square"}
    assert ok.groups["add"]["succeeded"] == 3
    assert all(a.started_at <= a.ended_at for a in ok.actions)


def test_retried_attempts_are_recorded(recorded):
    ok = flyte.get_run(recorded["ok"])
    [lucky] = [a for a in ok.actions if a.task == "store_tests.third_time_lucky"]
    assert lucky.phase is Phase.SUCCEEDED and lucky.attempts == 3
    history = lucky.attempt_history()
    assert [(h["number"], h["phase"]) for h in history] == [(1, "failed"), (2, "failed"), (3, "succeeded")]
    assert history[0]["error_type"] == "builtins.ConnectionError"
    assert history[1]["error_message"] == "attempt 2 of k failed"


def test_errors_keep_type_message_and_traceback(recorded):
    bad = flyte.get_run(recorded["bad"])
    assert bad.phase == "failed"
    with pytest.raises(ValueError, match="item 1 is bad") as caught:
        bad.outputs()
    notes = "\n".join(getattr(caught.value, "__notes__", []))
    assert "maybe_fail" in notes and "recorded traceback" in notes
    assert [a.task for a in bad.errors] == ["store_tests.pipeline", "store_tests.maybe_fail"]  # the driver failed too
    failed = bad.errors[1]
    assert failed.phase is Phase.FAILED and failed.inputs() == {"x": 1}
    assert failed.error_type == "builtins.ValueError" and failed.error_message == "item 1 is bad"
    assert "raise ValueError" in failed.traceback and isinstance(failed.error, ValueError)
    with pytest.raises(flyte.StoreError, match="has no output"):
        failed.output()
    assert isinstance(bad.error, ValueError) and bad.ended_at >= bad.started_at


def test_this_kernels_runs_come_back_live_and_reads_see_them_at_once(home):
    run = flyte.run(pipeline, 2)
    assert run.outputs(timeout=10) == [100, 102]
    assert flyte.get_run(run.name) is run
    assert flyte.runs(limit=1) == [run]
    conn = sqlite3.connect(home / DB_NAME)  # committed, not only in memory
    assert conn.execute("SELECT phase, actions FROM runs WHERE name = ?", (run.name,)).fetchone() == ("succeeded", 5)
    assert run.inputs() == {"n": 2}


def test_runs_filters_by_status_and_limit(recorded):
    assert [r.name for r in flyte.runs(status="failed")] == [recorded["bad"]]
    assert [r.name for r in flyte.runs(status=["succeeded", "aborted"])] == [recorded["ok"]]
    assert [r.name for r in flyte.runs(limit=1)] == [recorded["bad"]]
    assert len(flyte.runs(limit=None)) == 2


def test_a_name_taken_in_the_store_is_not_reused(tmp_path, home):
    code = "import json, flyte_nb as f\nfrom tests.data.store_tasks import pipeline\n" \
           "r = f.with_runcontext(name='nightly').run(pipeline, 1); r.outputs()\nprint(json.dumps(r.name))\n"
    first = run_child(tmp_path, home, code)
    second = run_child(tmp_path, home, code)
    assert (first, second) == ("nightly", "nightly-2")
    assert flyte.get_run("nightly").outputs() == flyte.get_run("nightly-2").outputs() == [100]


@pytest.mark.parametrize("name", ["no-such-run", "x" * 40])
def test_get_run_of_an_unknown_name_says_which(recorded, name):
    with pytest.raises(flyte.RunNotFoundError, match=f"no run named '{name}'") as caught:
        flyte.get_run(name)
    assert isinstance(caught.value, KeyError) and "flyte_nb.runs()" in str(caught.value)


@pytest.mark.parametrize("bad", [123, "", None])
def test_get_run_needs_a_name(bad):
    with pytest.raises(flyte.ConfigurationError, match="get_run needs a run name"):
        flyte.get_run(bad)


@pytest.mark.parametrize("status", ["bogus", ["running", "done"], 3, []])
def test_runs_rejects_unknown_status(status):
    with pytest.raises(flyte.ConfigurationError, match="status must be one of queued, running, succeeded"):
        flyte.runs(status=status)


@pytest.mark.parametrize("limit", [0, -1, 2.5, "10", True])
def test_runs_rejects_bad_limits(limit):
    with pytest.raises(flyte.ConfigurationError, match="limit must be a whole number"):
        flyte.runs(limit=limit)


def test_stored_action_names_are_checked(recorded):
    with pytest.raises(KeyError, match="has no recorded action 'a99'"):
        flyte.get_run(recorded["ok"]).action("a99")


def test_recording_off_writes_nothing(home, monkeypatch):
    monkeypatch.setenv("FLYTE_NB_STORE", "off")
    run = flyte.run(pipeline, 1)
    assert run.outputs(timeout=10) == [100]
    assert not (home / DB_NAME).exists()
    assert flyte.runs()[0] is run and flyte.get_run(run.name) is run  # this kernel's runs, newest first
    with pytest.raises(flyte.RunNotFoundError, match="run store is off"):
        flyte.get_run("elsewhere")
    with pytest.raises(flyte.ConfigurationError, match="needs the run store"):
        run.retry_failed()


def test_history_is_json_friendly(recorded):
    run = flyte.get_run(recorded["ok"])
    json.dumps({"name": run.name, "phase": run.phase, "counts": run.counts, "url": run.url})
    assert repr(run).startswith(f"<StoredRun {run.name} succeeded")
