"""Run names for people, run keys for the machine.

A run's *name* is what the user typed (or a readable one such as ``brisk-otter-4f2a``) and is
only ever displayed or looked up. Anything that touches the file system, a container or a
cluster uses the run's *key* instead: a slug of the name (letters, digits, ``_`` and ``-``, never
a dot, never empty) followed by a number this kernel hands out once. Two runs can therefore never
share a key, whatever their names ("exp 1" and "exp_1", ``.`` and ``..``), and a key is always a
single harmless path component.
"""

from __future__ import annotations

import itertools
import re
import secrets

from ..errors import ConfigurationError

_ADJECTIVES = (
    "amber", "brisk", "calm", "dapper", "eager", "fleet", "gentle", "hardy", "ivory", "jolly",
    "keen", "lucid", "mellow", "nimble", "olive", "plucky", "quiet", "rapid", "sunny", "tidy",
    "umber", "vivid", "witty", "young", "zesty",
)
_NOUNS = (
    "otter", "heron", "lynx", "marten", "falcon", "badger", "gecko", "ibis", "koala", "lemur",
    "moose", "newt", "osprey", "puffin", "quail", "raven", "stoat", "tapir", "urchin", "vole",
    "walrus", "yak", "zebra", "bison", "crane",
)
MAX_NAME = 200  # characters of a run name
_SLUG = 40  # characters of the name kept in a key
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

_issued: set[str] = set()
_serial = itertools.count(1)


def new_run_name() -> str:
    while True:
        name = f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}-{secrets.token_hex(2)}"
        if name not in _issued:
            _issued.add(name)
            return name


def check_run_name(name: object) -> str:
    """``name`` if people can use it as a run name, else a ConfigurationError saying why.

    Refused: blanks, ``/`` and control characters, and names made only of dots, because a name is
    also the last segment of the run's URL in the Runs panel (where ``.`` and ``..`` mean folders).
    """
    if not isinstance(name, str) or not name.strip():
        raise ConfigurationError(f"run name must be a non-empty string, got {name!r}")
    if len(name) > MAX_NAME:
        raise ConfigurationError(f"run name must be at most {MAX_NAME} characters, got {len(name)}")
    if "/" in name or _CONTROL.search(name):
        raise ConfigurationError(f"run name must not contain '/' or control characters, got {name!r}")
    if not name.strip().strip("."):
        raise ConfigurationError(f"run name must not be only dots (it is part of the run's URL), got {name!r}")
    return name


def run_key(name: str) -> str:
    """A key for a run called ``name``: readable, a safe path component, unique in this kernel."""
    slug = _UNSAFE.sub("_", name)[:_SLUG].strip("_-") or "run"
    return f"{slug}-{next(_serial)}"
