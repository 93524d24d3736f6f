"""``flyte.io``: ``File`` and ``Dir`` over local storage under the flyte_nb home (``from flyte_nb.io import File``)."""

from __future__ import annotations

from .dirs import Dir, EmptyDir
from .files import AsyncFile, File, HashFunction

PARQUET = "parquet"  # the format name the SDK gives parquet files

__all__ = ["PARQUET", "AsyncFile", "Dir", "EmptyDir", "File", "HashFunction"]
