"""Fuzzing the REST API on a real server: whatever is sent, the answer is JSON, never a 500, and quick.

Hypothesis generates query parameters (known names with hostile values, unknown names), run
names in URLs (any text, percent-encoded) and POST bodies (any bytes, any JSON). The invariant
over every request: status 2xx, 304 or 4xx, a JSON body (except the empty 304), answered within
``ANSWER_WITHIN`` seconds. Example counts are printed in the summary (``-s`` shows them).
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from .conftest import TOKEN
from .test_api import RECORDED

ANSWER_WITHIN = 10.0  # seconds; a loaded 2-core machine answers these in milliseconds
EXAMPLES = 150
RANDOM = bool(os.environ.get("FLYTE_NB_FUZZ_RANDOM"))  # new examples each run; by default the same ones
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=not RANDOM,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
PARAMS = ("status", "notebook", "kernel", "cell", "limit", "before", "offset", "phase", "group")
counted: dict[str, int] = {}


def _send(server, method: str, path: str, body: bytes | None = None) -> tuple[int, object]:
    """One raw request (no client-side encoding of the path or body); checks the invariant."""
    request = urllib.request.Request(f"{server['url']}/flyte-nb/api/{path}", data=body, method=method,
                                     headers={"Authorization": f"token {TOKEN}"})
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    took = time.monotonic() - started
    assert took < ANSWER_WITHIN, f"{method} {path} took {took:.1f} s"
    assert 200 <= status < 300 or status == 304 or 400 <= status < 500, (status, method, path, body, raw[:300])
    if status == 304:
        return status, None
    try:
        parsed = json.loads(raw)
    except ValueError:
        raise AssertionError(f"{method} {path} answered {status} with no JSON: {raw[:300]!r}") from None
    return status, parsed


def _count(what: str) -> None:
    counted[what] = counted.get(what, 0) + 1


@pytest.fixture(scope="module")
def recorded(server):
    from .conftest import run_script

    run_script(server["home"], RECORDED)
    return "recorded"


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    print("\nfuzz examples sent to the server:", ", ".join(f"{k} {v}" for k, v in sorted(counted.items())),
          f"({sum(counted.values())} in all)")


hostile_numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(["", "-0", "+5", "1e3", "0x10", " 7", "9" * 30, "9" * 5000, "1_000", "٣", "NaN", "inf", "%00",
                     str(2**63 - 1), str(2**63), str(-(2**63) - 1), "99999999999999999999999"]))
values = st.one_of(hostile_numbers, st.text(max_size=40),
                   st.sampled_from(["live", "running", "failed", "cached", "../..", "/etc/passwd", "squares"]))
queries = st.tuples(st.dictionaries(st.sampled_from(PARAMS), values, min_size=1, max_size=4),
                    st.lists(st.tuples(st.text(min_size=1, max_size=10), values), max_size=2)).map(
    lambda known_and_unknown: [*known_and_unknown[0].items(), *known_and_unknown[1]])
names = st.one_of(st.text(min_size=1, max_size=60),
                  st.sampled_from(["recorded", "..", ".", "%", "a/b", "\x00", "'; DROP TABLE runs; --", "ü" * 50]))


def _query(pairs: list[tuple[str, str]]) -> str:
    return urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote)


@FUZZ
@given(pairs=queries)
@example(pairs=[("before", str(2**63))])
@example(pairs=[("limit", "9" * 5000), ("status", "\x00")])
def test_any_query_of_the_runs_list_is_answered(server, recorded, pairs):
    _count("runs?query")
    _send(server, "GET", f"runs?{_query(pairs)}")


@FUZZ
@given(name=names, pairs=queries, number=hostile_numbers)
def test_any_run_name_and_query_is_answered(server, recorded, name, pairs, number):
    _count("run paths")
    quoted = urllib.parse.quote(name, safe="")
    for path in (f"runs/{quoted}", f"runs/{quoted}/actions?{_query(pairs)}", f"runs/recorded/actions?{_query(pairs)}",
                 f"runs/{quoted}/actions/{urllib.parse.quote(number, safe='')}",
                 f"runs/recorded/actions/{urllib.parse.quote(number, safe='')}"):
        _send(server, "GET", path)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                           max_leaves=10)
bodies = st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode()),
                   st.dictionaries(st.just("reason"), json_values).map(lambda v: json.dumps(v).encode()))


@FUZZ
@given(name=names, body=bodies)
def test_any_abort_body_is_answered(server, recorded, name, body):
    _count("abort bodies")
    status, answer = _send(server, "POST", f"runs/{urllib.parse.quote(name, safe='')}/abort", body)
    assert status in (202, 400, 404, 409), (status, answer)
    status, _ = _send(server, "POST", "runs/recorded/abort", body)  # a real, finished run
    assert status in (400, 409)


def test_unknown_api_paths_are_a_json_404(server):
    for path in ("nothing", "runs/a/b/c", "runs/", "runs/recorded/actions/1/more"):
        status, answer = _send(server, "GET", path)
        assert status == 404 and "message" in answer, (path, status, answer)
