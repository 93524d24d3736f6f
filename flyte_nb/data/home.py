"""Where flyte_nb keeps its files: ``FLYTE_NB_HOME`` (default ``~/.flyte_nb``), or ``init(home=)``."""

from __future__ import annotations

import os
from pathlib import Path

from ..engine.kernel import kernel


class _ChosenHome:
    """The home ``init(home=)`` chose for this kernel (None: the environment decides)."""

    path: Path | None = None


def home_dir() -> Path:
    chosen = kernel().part(_ChosenHome).path
    if chosen is not None:
        return chosen
    return Path(os.environ.get("FLYTE_NB_HOME") or Path.home() / ".flyte_nb").expanduser()


def set_home_dir(path: str | os.PathLike[str] | None) -> None:
    kernel().part(_ChosenHome).path = Path(path).expanduser() if path is not None else None
