"""Shared fixtures: every test gets its own flyte_nb home."""

from __future__ import annotations

import pytest

from flyte_nb.data.home import set_home_dir


@pytest.fixture(autouse=True)
def flyte_home(tmp_path, monkeypatch):
    home = tmp_path / "flyte_nb_home"
    monkeypatch.setenv("FLYTE_NB_HOME", str(home))
    set_home_dir(None)
    yield home
    set_home_dir(None)
