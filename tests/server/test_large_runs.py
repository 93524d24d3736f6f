"""What keeps the Runs panel's answers cheap for a big run, on a real Jupyter server: the ETag from
the run's version before any query, aggregates the writer keeps, and actions paged by keyset."""

from __future__ import annotations

import sqlite3

import pytest

from flyte_nb.data.store import get_store

from tests.programs import fan_out

from .conftest import run_script

BIG = fan_out("big", concurrency=4, aio=False, group="leaves") + """
flyte.with_runcontext(name="big").run(main, 1_200).wait()
"""


@pytest.fixture(scope="module")
def big(server):
    run_script(server["home"], BIG)
    return "big"


def _db(server) -> sqlite3.Connection:
    return sqlite3.connect(get_store(server["home"]).path)


def test_the_writer_keeps_group_counts_and_the_timeline(big, server, client):
    with _db(server) as conn:
        counts, timeline = conn.execute("SELECT group_counts, timeline FROM runs WHERE name = ?", (big,)).fetchone()
    assert counts is not None and timeline is not None
    _, run, _ = client.get(f"runs/{big}")
    assert run["groups"] == [{"name": "leaves", "total": 1200, "counts": {"succeeded": 1200}, "capacity": 4,
                              "parent": 0, "parent_task": "big.main", "depth": 1}]  # (the parent from the run row)
    series = {s["name"]: s for s in run["timeline"]["series"]}
    assert series["leaves"]["peak"] == 4 and series["leaves"]["capacity"] == 4 and series["run"]["peak"] == 4
    assert run["timeline"]["start"] <= series["leaves"]["points"][1][0] <= run["timeline"]["end"]


def test_an_unchanged_run_is_a_304_without_its_query(big, server, client):
    _, _, headers = client.get(f"runs/{big}")
    with _db(server) as conn:  # the queries behind the answers would fail now: a 304 never runs them
        conn.execute("ALTER TABLE tasks RENAME TO tasks_away")
    try:
        status, body, _ = client.get(f"runs/{big}", headers={"If-None-Match": headers["Etag"]})
        assert status == 304 and body is None
        with _db(server) as conn:
            conn.execute("ALTER TABLE tasks_away RENAME TO tasks")
        _, _, page_headers = client.get(f"runs/{big}/actions?limit=3")
        with _db(server) as conn:
            conn.execute("ALTER TABLE tasks RENAME TO tasks_away")
        assert page_headers["Etag"] != headers["Etag"]  # one ETag per answer
        assert client.get(f"runs/{big}/actions?limit=3", headers={"If-None-Match": page_headers["Etag"]})[0] == 304
        with _db(server) as conn:  # a new batch (updated_at) changes the version
            conn.execute("ALTER TABLE tasks_away RENAME TO tasks")
            conn.execute("UPDATE runs SET updated_at = updated_at + 1 WHERE name = ?", (big,))
        assert client.get(f"runs/{big}", headers={"If-None-Match": headers["Etag"]})[0] == 200
    finally:
        with _db(server) as conn:
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'tasks_away'").fetchone():
                conn.execute("ALTER TABLE tasks_away RENAME TO tasks")


def test_actions_page_by_keyset_both_ways(big, client):
    _, page, _ = client.get(f"runs/{big}/actions?limit=100&after=1099")
    assert [a["number"] for a in page["actions"]] == list(range(1100, 1200))
    assert page["total"] == 1201 and page["next"] == 1199 and page["prev"] == 1100
    _, last, _ = client.get(f"runs/{big}/actions?limit=100&after=1100")
    assert [a["number"] for a in last["actions"]] == list(range(1101, 1201)) and last["next"] is None
    _, back, _ = client.get(f"runs/{big}/actions?limit=5&before=1100")
    assert [a["number"] for a in back["actions"]] == [1095, 1096, 1097, 1098, 1099] and back["next"] == 1099
    _, first, _ = client.get(f"runs/{big}/actions?limit=5&before=3")
    assert [a["number"] for a in first["actions"]] == [0, 1, 2] and first["prev"] is None
    _, start, _ = client.get(f"runs/{big}/actions?limit=5")
    assert start["prev"] is None and start["next"] == 4
    _, succeeded, _ = client.get(f"runs/{big}/actions?limit=2&after=10&phase=succeeded&group=leaves")
    assert [a["number"] for a in succeeded["actions"]] == [11, 12] and succeeded["total"] == 1200
    assert client.get(f"runs/{big}/actions?after=x")[0] == 400
