"""Value files: recorded values too large for their row, named by their content digest.

Values (inputs, outputs, pickled errors) up to ``INLINE_MAX`` bytes live in their row as a BLOB;
larger ones are files under ``blobs/`` beside the database, named by their digest (the row holds
the digest as TEXT), written atomically and checked against the digest when read, so a damaged
file is an error, not a wrong value. A file is written before the row that names it; files made
for rows that will never be committed (a full disk at exit) are removed (:meth:`discard_fresh`).
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
from pathlib import Path

from ..errors import StoreError
from .committer import digest, write_value_file

INLINE_MAX = 32 * 1024
_DIGEST = re.compile(r"[0-9a-f]{32}")


class ValueFiles:
    """The value-file half of a :class:`~.store.Store` (``path``, ``blob_dir`` and ``fresh`` are its own)."""

    path: Path
    blob_dir: Path
    fresh: list[str]  # value files the writer created that no committed row names yet

    def blob_path(self, key: str) -> Path:
        """Where a value file lives; ``key`` must be a digest (a row's text never names another path)."""
        if not _DIGEST.fullmatch(key):
            raise StoreError(f"the run store at {self.path} holds {key[:80]!r} where a value digest belongs: "
                             "it was not written by flyte_nb")
        return self.blob_dir / key[:2] / key

    def pack(self, data: bytes) -> bytes | str:
        """What a value column holds: the bytes, or for a large value the digest of its file."""
        if len(data) <= INLINE_MAX:
            return data
        key, new = write_value_file(str(self.blob_dir), data)
        if new:
            self.fresh.append(key)
        return key

    def discard_fresh(self, conn: sqlite3.Connection | None) -> int:
        """Remove the value files the writer created for rows it will never commit; how many went.

        A file another kernel's committed row has named meanwhile (same content, same name) stays,
        and without a connection to check that none does, all of them stay: a stray file is better
        than a row whose value is gone.
        """
        keys, self.fresh = set(self.fresh), []
        if not keys or conn is None:
            return 0
        marks = ", ".join("?" * len(keys))
        columns = (("actions", "inputs"), ("actions", "outputs"), ("actions", "error_blob"), ("runs", "error_blob"),
                   ("cache", "output"))
        try:
            named = {row[0] for table, column in columns
                     for row in conn.execute(f"SELECT {column} FROM {table} WHERE {column} IN ({marks})", tuple(keys))}
        except sqlite3.Error:
            return 0
        removed = 0
        for key in keys - named:
            with contextlib.suppress(OSError):
                self.blob_path(key).unlink()
                removed += 1
        return removed

    def unpack(self, value: bytes | str) -> bytes:
        """The bytes a value column stands for; a file is checked against its digest."""
        if not isinstance(value, str):
            return bytes(value)
        try:
            data = self.blob_path(value).read_bytes()
        except OSError as error:
            raise StoreError(f"value file {self.blob_path(value)} of the run store is missing or unreadable: "
                             f"{error}") from error
        if digest(data) != value:
            raise StoreError(f"value file {self.blob_path(value)} of the run store is damaged (its content does "
                             "not match its digest)")
        return data


    def read_value(self, value: bytes | str, limit: int) -> tuple[bytes | None, int]:
        """(the bytes, their size) of a value column, or (None, size) past ``limit`` bytes, left unread."""
        if not isinstance(value, str):
            return (bytes(value), len(value)) if len(value) <= limit else (None, len(value))
        path = self.blob_path(value)
        try:
            with open(path, "rb") as file:
                size = os.fstat(file.fileno()).st_size
                if size > limit:
                    return None, size
                data = file.read(limit + 1)
        except OSError as error:
            raise StoreError(f"value file {path} of the run store is missing or unreadable: {error}") from error
        if digest(data) != value:
            raise StoreError(f"value file {path} of the run store is damaged (its content does not match its digest)")
        return data, len(data)
