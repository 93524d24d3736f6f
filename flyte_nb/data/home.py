"""Where flyte_nb keeps its files: ``FLYTE_NB_HOME`` (default ``~/.flyte_nb``)."""

from __future__ import annotations

import os
from pathlib import Path

_override: Path | None = None


def home_dir() -> Path:
    if _override is not None:
        return _override
    return Path(os.environ.get("FLYTE_NB_HOME") or Path.home() / ".flyte_nb").expanduser()


def set_home_dir(path: str | os.PathLike[str] | None) -> None:
    global _override
    _override = Path(path).expanduser() if path is not None else None
