"""Where ``File``/``Dir`` data lives here: folders under the flyte_nb home, no object store.

``new_remote`` paths are fresh folders under ``FLYTE_NB_HOME/data``; a path written by a user
may be a plain path or ``file://``. Remote URIs (``s3://`` …) have no meaning on one machine and
are refused with a message that says so.
"""

from __future__ import annotations

import pathlib
import uuid

from ..data.home import home_dir
from ..errors import ConfigurationError


def data_root() -> pathlib.Path:
    return home_dir() / "data"


def fresh_path(name: str | None = None) -> pathlib.Path:
    """A path nobody used yet: ``data/<random>/<name>`` (the parent is created)."""
    token = uuid.uuid4().hex
    folder = data_root() / token[:2] / token
    folder.mkdir(parents=True, exist_ok=True)
    return folder / (name or token)


def named_path(name: str) -> pathlib.Path:
    """The same path for the same name (``File.named_remote``)."""
    if not name or "/" in name or name in (".", ".."):
        raise ConfigurationError(f"a named remote needs a plain name like 'model.pt', got {name!r}")
    folder = data_root() / "named"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def local_path(path: str | pathlib.Path) -> pathlib.Path:
    """``path`` as a local path; remote URIs are refused."""
    text = str(path)
    if text.startswith("file://"):
        text = text[len("file://"):]
    elif "://" in text:
        scheme = text.split("://", 1)[0]
        raise ConfigurationError(f"{text!r} is a {scheme}:// URI; flyte_nb keeps files on this machine, so give a "
                                 "local path (download it first) or use File.new_remote()/File.from_local()")
    return pathlib.Path(text).expanduser()
