"""Shared fixtures: every test gets its own flyte_nb home."""

from __future__ import annotations

import os
import tempfile

import pytest

from flyte_nb.data.home import set_home_dir


# Runs may finish on the engine thread after their test: late files land here, not in ~/.flyte_nb.
os.environ.setdefault("FLYTE_NB_HOME", tempfile.mkdtemp(prefix="flyte_nb-tests-"))


@pytest.fixture(autouse=True)
def flyte_home(tmp_path, monkeypatch):
    home = tmp_path / "flyte_nb_home"
    monkeypatch.setenv("FLYTE_NB_HOME", str(home))
    set_home_dir(None)
    yield home
    set_home_dir(None)
