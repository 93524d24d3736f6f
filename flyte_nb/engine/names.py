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
import threading
from collections.abc import Callable

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
_serial = itertools.count(1)  # of run keys: process-wide, so that a Kernel.reset() never repeats one



def unique(name: str, taken: Callable[[str], bool]) -> str:
    """``name``, or ``name-2``, ``name-3`` … the first that ``taken`` does not claim."""
    base, n = name, 2
    while taken(name):
        name, n = f"{base}-{n}", n + 1
    return name


class RunNames:
    """The run names this kernel has handed out (one per kernel, see :class:`.kernel.Kernel`)."""

    def __init__(self) -> None:
        self._in_use: set[str] = set()
        self._lock = threading.Lock()

    def __contains__(self, name: object) -> bool:
        return name in self._in_use

    def claim(self, name: str | None, taken: Callable[[str], bool] = lambda name: False) -> str:
        """A name no run of this kernel (nor ``taken``, such as the run store) has: ``name`` or
        ``name-2`` …, or a readable new one such as ``brisk-otter-4f2a``."""
        with self._lock:
            if name is None:
                name = new_run_name(lambda n: n in self._in_use or taken(n))
            name = unique(name, lambda n: n in self._in_use or taken(n))
            self._in_use.add(name)
            return name

    def add(self, name: str) -> None:
        """``name`` is in use too (a run renamed on the way to the store)."""
        self._in_use.add(name)


def new_run_name(taken: Callable[[str], bool] = lambda name: False) -> str:
    """A readable run name such as ``brisk-otter-4f2a`` that ``taken`` does not claim."""
    while True:
        name = f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}-{secrets.token_hex(2)}"
        if not taken(name):
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
