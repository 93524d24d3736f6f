"""``when_alone``: a setup step that clashed with another process opening the same new file is retried."""

from __future__ import annotations

import sqlite3

import pytest

from flyte_nb.data.failures import when_alone


def test_a_locked_step_is_retried_until_it_goes_through():
    tries = []

    def step() -> str:
        tries.append(1)
        if len(tries) < 3:
            raise sqlite3.OperationalError("database is locked")
        return "wal"

    assert when_alone(step) == "wal" and len(tries) == 3


def test_other_errors_are_not_retried_and_a_lock_that_stays_is_raised():
    tries = []

    def broken() -> None:
        tries.append(1)
        raise sqlite3.OperationalError("no such table: rates")

    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        when_alone(broken)
    assert len(tries) == 1

    def locked() -> None:
        raise sqlite3.OperationalError("database is locked")

    with pytest.raises(sqlite3.OperationalError, match="locked"):
        when_alone(locked, tries=3)
