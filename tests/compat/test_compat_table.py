"""The README's compatibility table covers every public name of the Flyte SDK, and says the truth.

The SDK's names are committed in ``sdk_names.json`` (made from the reference venv, see
``reference.py``); ``test_differential.py`` checks that file against the live SDK.
"""

from __future__ import annotations

import importlib
import json
import pathlib
import re

import pytest

import flyte_nb
from flyte_nb.errors import ConfigurationError

ROOT = pathlib.Path(__file__).resolve().parents[2]
SDK = json.loads((pathlib.Path(__file__).parent / "sdk_names.json").read_text())
ROW = re.compile(r"^\| `(flyte(?:\.\w+)*(?:\.\*)?)` \| (supported|accepted|not supported) \|(.*)\|$")
STATUSES = ("supported", "accepted", "not supported")


def table() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Compatibility with the Flyte 2 SDK", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        if line.startswith("| `flyte"):
            match = ROW.match(line)
            assert match, f"malformed row in the README's compatibility table: {line}"
            name, status, _ = match.groups()
            assert name not in rows, f"{name} appears twice in the compatibility table"
            rows[name] = status
    return rows


def sdk_names() -> list[str]:
    """Every public SDK name, qualified: ``flyte.map``, ``flyte.errors.OOMError`` …"""
    names = []
    for module, members in SDK["modules"].items():
        names += [f"{module}.{member}" for member in members]
    return names


def status_of(rows: dict[str, str], name: str) -> str | None:
    module = name.rsplit(".", 1)[0]
    return rows.get(name) or rows.get(f"{module}.*")


def resolve(name: str) -> object:
    """``flyte.io.File`` → ``flyte_nb.io.File`` (AttributeError when absent)."""
    module, member = name.rsplit(".", 1)
    return getattr(importlib.import_module(module.replace("flyte", "flyte_nb", 1)), member)


def test_every_sdk_name_has_a_row_and_every_row_names_an_sdk_name():
    rows = table()
    names = sdk_names()
    missing = [n for n in names if status_of(rows, n) is None]
    assert not missing, f"add these SDK names to the README's compatibility table: {missing}"
    modules = set(SDK["modules"])
    stale = [r for r in rows if (r[:-2] not in modules if r.endswith(".*") else r not in names)]
    assert not stale, f"these rows name nothing in the SDK {SDK['version']}: {stale}"


@pytest.mark.parametrize("name", sdk_names())
def test_supported_and_accepted_names_resolve_and_cluster_only_ones_say_so(name):
    status = status_of(table(), name)
    if status in ("supported", "accepted"):
        resolve(name)
        return
    try:
        value = resolve(name)
    except AttributeError:
        return  # absent: an AttributeError names it
    if callable(value) and not isinstance(value, type):
        with pytest.raises(ConfigurationError, match="needs a Flyte cluster"):
            value()


def test_public_names_are_re_exported():
    for name in flyte_nb.__all__:
        assert hasattr(flyte_nb, name), name
    assert {"errors", "io", "report", "trace", "ctx", "Secret", "Trigger"} <= set(flyte_nb.__all__)
