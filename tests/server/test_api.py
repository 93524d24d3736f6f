"""The REST API on a real Jupyter server, over runs recorded by real processes."""

from __future__ import annotations

import pickle
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from flyte_nb.data.store import get_store

from .conftest import TOKEN, run_script

RECORDED = """
import asyncio, os, flyte_nb as flyte
env = flyte.TaskEnvironment("api")

@env.task
async def square(x: int) -> int:
    await asyncio.sleep(0.01)
    print("squared", x)
    if x == 5:
        raise ValueError("five is not welcome")
    return x * x

@env.task
async def main(n: int) -> list:
    return list(flyte.map(square, range(n), concurrency=3, return_exceptions=True, group_name="squares"))

run = flyte.with_runcontext(name="recorded").run(main, 12)
run.wait()
"""


@pytest.fixture(scope="module")
def recorded(server):
    os_env = {"JPY_SESSION_NAME": str(server["root"] / "work" / "demo.ipynb")}
    run_script(server["home"], RECORDED, env=os_env)
    return "recorded"


def test_requests_without_the_token_are_refused(server, client):
    for method, path in (("GET", "runs"), ("GET", "runs/recorded"), ("POST", "runs/recorded/abort")):
        status, _, _ = client.request(method, path, body={} if method == "POST" else None, token=False)
        assert status == 403, (method, path)


def test_a_post_with_only_the_login_cookie_needs_the_xsrf_token(server):
    """A browser session (cookie, no token header) must pass Jupyter's XSRF check to abort."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    opener.open(f"{server['url']}/login?token={TOKEN}", timeout=10)  # sets the login and _xsrf cookies
    request = urllib.request.Request(f"{server['url']}/flyte-nb/api/runs/nothing/abort", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        opener.open(request, timeout=10)
    assert refused.value.code == 403
    assert opener.open(f"{server['url']}/flyte-nb/api/runs", timeout=10).status == 200  # GET needs no XSRF


def test_aborting_an_unknown_run_is_a_404_that_says_so(client):
    status, body, _ = client.post("runs/no-such-run/abort")
    assert status == 404 and "no run named 'no-such-run'" in body["message"]
    status, body, _ = client.get("runs/no-such-run")
    assert status == 404 and "no-such-run" in body["message"]
    assert client.get("runs/no-such-run/actions")[0] == 404


def test_bad_parameters_get_a_400_that_says_what_to_send(client):
    status, body, _ = client.get("runs?limit=100000")
    assert status == 400 and "limit must be a whole number between 1 and 500" in body["message"]
    status, body, _ = client.get("runs?status=done")
    assert status == 400 and "status must be one of live, queued, running" in body["message"]
    status, body, _ = client.get("runs?before=abc")
    assert status == 400 and "before" in body["message"]
    for empty in (b"", b"  \n"):  # parsed before the run is looked up: a 404, not a 400, means it was accepted
        status, body, _ = client.post("runs/x/abort", body=empty, headers={"Content-Type": "application/json"})
        assert status == 404, (empty, body)
    for not_json in (b"not json", b"{", b"[1, 2]", b'"a string"', b"\xff\xfe"):
        status, body, _ = client.post("runs/x/abort", body=not_json)
        assert status == 400 and "JSON" in body["message"], (not_json, body)


@pytest.mark.parametrize("query", [
    "runs?before=99999999999999999999999", "runs?before=9223372036854775808", "runs?limit=99999999999999999999",
    "runs/recorded/actions?offset=9223372036854775808", "runs/recorded/actions?limit=1e3",
    "runs/recorded/actions/9223372036854775808", "runs/recorded/actions/" + "9" * 5000])
def test_whole_numbers_past_sqlites_range_are_a_400(recorded, client, query):
    status, body, _ = client.get(query)
    assert status == 400 and "must be a whole number between" in body["message"], (status, body)
    assert client.get("runs?before=9223372036854775807")[0] == 200  # the largest SQLite integer is fine


class Reduces:
    def __init__(self, callable, *args):
        self.callable, self.args = callable, args

    def __reduce__(self):
        return self.callable, self.args


def test_costly_values_get_a_bounded_preview_not_a_500(server, client):
    """A stored int too long to print failed the whole action detail; a huge value was read whole."""
    store = get_store(server["home"])
    with store.writing() as conn:
        run = conn.execute("INSERT INTO runs (name, driver, phase, created_at) VALUES ('costly', 'c.main', 'succeeded', "
                           "?)", (time.time(),)).lastrowid
        task = store.task_id(conn, "c.main", None, "")
        huge = "0123456789abcdef" * 2  # a 1 GB value file (sparse: it costs no disk), never read for a preview
        store.blob_path(huge).parent.mkdir(parents=True, exist_ok=True)
        with open(store.blob_path(huge), "wb") as file:
            file.truncate(1 << 30)
        values = [(pickle.dumps(2**20000), store.pack(pickle.dumps(b"x" * (3 << 20)))),
                  (pickle.dumps(Reduces(bytearray, 500_000_000)), "../../../etc/passwd"), (huge, None)]
        for number, (output, inputs) in enumerate(values):
            conn.execute("INSERT INTO actions (run, number, task, phase, inputs, outputs) VALUES (?, ?, ?, 'succeeded', "
                         "?, ?)", (run, number, task, inputs, output))
    started = time.monotonic()
    status, action, _ = client.get("runs/costly/actions/0")
    assert status == 200, action
    assert action["output"]["preview"] == "<int of about 6,021 digits>"
    assert action["inputs"]["preview"].startswith("<a value of 3.1 MB: too large to preview here")
    status, action, _ = client.get("runs/costly/actions/1")
    assert status == 200 and "too costly" in action["output"]["preview"], action
    assert "where a value digest belongs" in action["inputs"]["preview"]
    status, action, _ = client.get("runs/costly/actions/2")
    assert status == 200 and action["output"] == {
        "preview": "<a value of 1073.7 MB: too large to preview here; load it in a kernel with flyte_nb.get_run(...)>",
        "size": 1 << 30}
    assert time.monotonic() - started < 10  # each took 8 s and 4.4 GB of the server's memory


def test_a_recorded_run_lists_with_its_notebook_and_counts(recorded, client):
    status, body, headers = client.get("runs")
    assert status == 200
    run = next(r for r in body["runs"] if r["name"] == recorded)
    assert run["phase"] == "succeeded" and not run["live"] and run["driver"].endswith("main")
    assert run["notebook"] == "work/demo.ipynb"  # relative to the server's root, as JupyterLab opens it
    assert run["counts"] == {"succeeded": 12, "failed": 1} and run["actions"] == 13
    assert run["duration"] > 0
    assert client.get("runs?notebook=work/demo.ipynb")[1]["total"] == 1
    assert client.get("runs?notebook=other.ipynb")[1]["total"] == 0
    assert client.get("runs?status=failed")[1]["runs"] == []


def test_an_unchanged_list_is_a_304(recorded, client):
    _, _, headers = client.get("runs")
    status, body, _ = client.get("runs", headers={"If-None-Match": headers["Etag"]})
    assert status == 304 and body is None


def test_run_detail_has_groups_limits_timeline_and_errors(recorded, client):
    status, run, _ = client.get(f"runs/{recorded}")
    assert status == 200
    (squares,) = run["groups"]
    assert squares == {"name": "squares", "total": 12, "counts": {"succeeded": 11, "failed": 1}, "capacity": 3,
                       "parent": 0, "parent_task": "api.main", "depth": 1}
    series = {s["name"]: s for s in run["timeline"]["series"]}
    assert series["squares"]["capacity"] == 3 and series["squares"]["peak"] == 3  # the limit was used, never passed
    assert 0 < series["squares"]["mean"] <= 3
    assert run["timeline"]["start"] <= series["squares"]["points"][1][0] <= run["timeline"]["end"]
    assert [e["message"] for e in run["errors"]] == ["five is not welcome"]
    assert run["errors"][0]["type"] == "builtins.ValueError" and run["errors"][0]["group"] == "squares"


def test_actions_page_and_filter(recorded, client):
    _, page, _ = client.get(f"runs/{recorded}/actions?limit=5&offset=2")
    assert page["total"] == 13 and [a["number"] for a in page["actions"]] == [2, 3, 4, 5, 6]
    _, failed, _ = client.get(f"runs/{recorded}/actions?phase=failed")
    assert failed["total"] == 1 and failed["actions"][0]["index"] == 5
    assert failed["actions"][0]["error"] == {"type": "builtins.ValueError", "message": "five is not welcome"}
    assert client.get(f"runs/{recorded}/actions?group=squares")[1]["total"] == 12


def test_action_detail_has_traceback_logs_and_previews(recorded, client):
    _, failed, _ = client.get(f"runs/{recorded}/actions?phase=failed")
    number = failed["actions"][0]["number"]
    status, action, _ = client.get(f"runs/{recorded}/actions/{number}")
    assert status == 200
    assert "in square" in action["error"]["traceback"] and "ValueError: five" in action["error"]["traceback"]
    assert action["logs"] == "squared 5\n"
    assert action["inputs"]["preview"] == "{'x': 5}"
    _, ok, _ = client.get(f"runs/{recorded}/actions/{number + 1}")
    assert ok["output"]["preview"] == "36" and ok["output"]["size"] > 0
    assert client.get(f"runs/{recorded}/actions/999")[0] == 404


def test_aborting_a_finished_run_is_a_409(recorded, client):
    status, body, _ = client.post(f"runs/{recorded}/abort")
    assert status == 409 and "already ended" in body["message"]


LONG = """
import asyncio, sys, flyte_nb as flyte
env = flyte.TaskEnvironment("long")

@env.task
async def nap(i: int) -> int:
    await asyncio.sleep(1)
    return i

@env.task
async def main() -> list:
    return list(flyte.map(nap, range(100), concurrency=2))

run = flyte.with_runcontext(name="long-run").run(main)
print("started", flush=True)
try:
    run.outputs()
except flyte.RunAbortedError as error:
    print("ABORTED:", error, flush=True)
print("phase", run.phase, flush=True)
"""


def test_abort_reaches_the_process_that_owns_the_run(server, client):
    process = run_script(server["home"], LONG, wait=False)
    assert process.stdout.readline().strip() == "started"
    deadline = time.monotonic() + 20
    while client.get("runs?status=running")[1]["total"] == 0:
        assert time.monotonic() < deadline, "the run never showed up as running"
        time.sleep(0.1)
    asked = time.monotonic()
    status, body, _ = client.post("runs/long-run/abort", {"reason": "stopped by a test"})
    assert status == 202 and body["requested"] is True
    out, _ = process.communicate(timeout=30)
    stopped = time.monotonic() - asked
    assert "ABORTED:" in out and "stopped by a test" in out and "phase aborted" in out, out
    assert stopped < 5, f"the abort took {stopped:.1f}s to land"
    _, run, _ = client.get("runs/long-run")
    assert run["phase"] == "aborted" and run["abort_reason"] == "stopped by a test"
    assert run["counts"].get("succeeded", 0) < 100


def test_aborting_a_run_of_a_dead_kernel_marks_it_at_once(server, client):
    process = run_script(server["home"], LONG.replace("long-run", "orphan-run"), wait=False)
    assert process.stdout.readline().strip() == "started"
    deadline = time.monotonic() + 20
    while client.get("runs/orphan-run/actions")[1].get("total", 0) < 2:  # its actions are running
        assert time.monotonic() < deadline
        time.sleep(0.1)
    process.kill()
    process.wait()
    status, body, _ = client.post("runs/orphan-run/abort")
    assert status == 202 and body["phase"] == "aborted"
    _, run, _ = client.get("runs/orphan-run")
    assert run["abort_reason"] == "kernel exited"
    _, page, _ = client.get("runs/orphan-run/actions?limit=500")
    phases: dict[str, int] = {}
    for action in page["actions"]:
        phases[action["phase"]] = phases.get(action["phase"], 0) + 1
    assert run["counts"] == phases and run["actions"] == page["total"]  # the panel's counts agree with its list
    assert "running" not in phases and phases.get("cancelled", 0) >= 1


def test_a_damaged_record_does_not_take_the_page_down(server, client):
    store = get_store(server["home"])
    with store.writing() as conn:
        for name, counts, groups, pools in (("bad-json", "{not json", "[", "x"), ("bad-shape", "[1]", '{"g": 5}', "7")):
            conn.execute("INSERT INTO runs (name, driver, phase, created_at, counts, groups, pools) VALUES "
                         "(?, 'd', 'succeeded', ?, ?, ?, ?)", (name, time.time(), counts, groups, pools))
    for name in ("bad-json", "bad-shape"):
        status, run, _ = client.get(f"runs/{name}")
        assert status == 200 and run["counts"] == {} and run["pools"] == [], run
    assert client.get("runs?limit=500")[0] == 200


def test_ten_thousand_runs_page_in_under_200_ms(server, client):
    store = get_store(server["home"])
    conn = store.connect()
    now = time.time()
    with conn:
        conn.executemany(
            "INSERT INTO runs (name, driver, phase, created_at, started_at, ended_at, actions, counts) "
            "VALUES (?, 'bulk.main', ?, ?, ?, ?, 10, '{\"succeeded\": 10}')",
            [(f"bulk-{i}", "failed" if i % 10 == 0 else "succeeded", now + i, now + i, now + i + 1)
             for i in range(10_000)])
    conn.close()
    seen: list[str] = []
    cursor = ""
    slowest = 0.0
    for _ in range(5):
        started = time.perf_counter()
        status, page, _ = client.get(f"runs?limit=100{cursor}")
        slowest = max(slowest, time.perf_counter() - started)
        assert status == 200 and page["total"] >= 10_000
        seen += [r["name"] for r in page["runs"]]
        cursor = f"&before={page['next']}"
    assert seen[:2] == ["bulk-9999", "bulk-9998"] and len(set(seen)) == 500
    started = time.perf_counter()
    status, failed, _ = client.get("runs?status=failed&limit=100")
    slowest = max(slowest, time.perf_counter() - started)
    assert failed["total"] == 1000
    assert slowest < 0.2, f"a page of runs took {slowest * 1000:.0f} ms"


def test_the_run_link_opens_jupyterlab_on_the_run(server):
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as redirect:
        opener.open(f"{server['url']}/flyte-nb/runs/my%20run?token={TOKEN}", timeout=10)
    assert redirect.value.code == 302
    assert redirect.value.headers["Location"].endswith("/lab?flyte-nb-run=my%20run")
