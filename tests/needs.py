"""What a suite needs from the machine: missing locally is a skip, missing under CI a failure.

Suites test the real thing (Docker daemon, Dask, Chromium); a CI run that silently skipped one
would pass while proving nothing, so under ``CI`` a missing component fails the run.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def need(problem: str | None, *, module_level: bool = False) -> None:
    """Skip (or, under CI, fail) when ``problem`` says what is missing; do nothing when it is None."""
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI=true but {problem}", pytrace=False)
    pytest.skip(problem, allow_module_level=module_level)


def need_module(name: str, install: str = "scripts/test installs it") -> ModuleType:
    """Import ``name`` for a test module: a skip of the whole module without it (a failure under CI)."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        need(f"{name} is not importable ({error}); {install}", module_level=True)
        raise  # unreachable: need() skipped or failed
