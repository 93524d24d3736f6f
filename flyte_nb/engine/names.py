"""Readable, unique run names such as ``brisk-otter-4f2a``."""

from __future__ import annotations

import secrets

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

_issued: set[str] = set()


def new_run_name() -> str:
    while True:
        name = f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}-{secrets.token_hex(2)}"
        if name not in _issued:
            _issued.add(name)
            return name
