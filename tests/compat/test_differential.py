"""Flyte-style programs (``programs/``), each run under flyte_nb and under the real SDK from PyPI.

Where the SDK's local mode gets a program right, both must print the same outputs. Where it is
known to be wrong (``FLYTE_LOCAL_IS_WRONG`` says how), flyte_nb must print the correct outputs and
the SDK must still print something else, so that a fixed SDK shows up here. The SDK runs in a
venv of its own, made by the test set-up (``reference.py``).
"""

from __future__ import annotations

import json

import pytest

from tests.compat.differential import flyte_nb_python, run_program
from tests.compat.reference import NAMES_FILE, live_names, reference_python

EXPECTED = {
    "errors": {"ok": {"ValueError": "item 2 is bad", "RuntimeUserError": "ValueError", "Exception": True,
                      "gather": [10, "ValueError"]}},
    "map_concurrency": {"ok": {"results": [0, 1, 2, 3, 4, 5], "peak": 3}},
    "timeout": {"ok": "timed out"},
    "env_vars": {"ok": ["hello", "debug"]},
    "trace": {"ok": {"add": 5, "count": [0, 1, 4, 9], "refused": "'no 7'"}},
    "sync_trace": {"ok": 42},
    "context": {"ok": {"inside": {"custom": {"team": "ml", "stage": "dev"}, "has_action": True, "same_run": True},
                       "outside": {}, "in_task": True}},
    "override": {"ok": [3, 3]},
    "non_recoverable": {"ok": ["NonRecoverableError", 1]},
    "partial_map": {"ok": [11, 21, 31]},
    "sync_map": {"ok": [2, 4, 6]},
    "io_files": {"ok": ["alpha,beta\n", "alpha,beta\n", ["a.txt", "b.txt"]]},
    "report": {"ok": "reported"},
    "policies": {"ok": [16, 2, 9]},
    "secrets": {"ok": ["token-from-the-kernel"]},
    "triggers": {"ok": [True, 5]},
    "checkpoint": {"ok": [5, [0, 1, 2, 3, 4]]},
    "notify": {"ok": [5, ["succeeded", "failed", "timed_out", "aborted", "failed", "failed"], ["oncall@example.com"],
                      "refused"]},
}

FLYTE_LOCAL_IS_WRONG = {
    "errors": "the child's ValueError reaches the parent as a RuntimeUserError only: `except ValueError` misses it",
    "map_concurrency": "map runs one item at a time whatever `concurrency` says (peak 1)",
    "timeout": "timeouts are not enforced: the task runs to the end",
    "env_vars": "TaskEnvironment(env_vars=) are not set in the task body",
    "sync_trace": "a sync trace called from an async task dies with 'Deadlock detected'",
    "non_recoverable": "the child's NonRecoverableError reaches the parent as a plain RuntimeUserError",
    "sync_map": "a sync flyte.map inside an async task dies with 'Deadlock detected'",
    "secrets": "secrets are not put in the task's environment",
    "triggers": "a scheduled task run by hand does not get its trigger's inputs (the run fails)",
}

SECRET = {"NB_SERVICE_TOKEN": "token-from-the-kernel"}


@pytest.fixture(scope="module")
def sdk_python():
    return reference_python()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_program_under_flyte_nb_and_the_sdk(name, sdk_python, tmp_path):
    ours = run_program(flyte_nb_python(), "flyte_nb", name, tmp_path / "nb", SECRET)
    theirs = run_program(sdk_python, "flyte", name, tmp_path / "sdk", SECRET)
    assert ours == EXPECTED[name], f"flyte_nb is wrong on {name}"
    if name in FLYTE_LOCAL_IS_WRONG:
        assert theirs != EXPECTED[name], (f"the SDK's local mode now gets {name} right "
                                          f"(it used to be wrong: {FLYTE_LOCAL_IS_WRONG[name]}); compare it instead")
    else:
        assert theirs == ours, f"flyte_nb and the SDK differ on {name}"


def test_committed_sdk_names_match_the_sdk(sdk_python):
    committed = json.loads(NAMES_FILE.read_text())
    live = live_names(sdk_python)
    assert live == committed, "the SDK's public names changed: run `python -m tests.compat.reference --write` " \
                              "and update the README's compatibility table"
