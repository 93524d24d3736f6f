"""What a SQLite failure means: a damaged file, a full disk, or something to retry.

The store refuses a damaged file (never repairs it), waits out a full disk, and reports every
failure on one short line that says what to do (see :meth:`.store.Store.error`).
"""

from __future__ import annotations

import errno
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def is_corruption(error: BaseException) -> bool:
    """True for SQLite's "not a database" / "malformed" errors (as opposed to locks or full disks)."""
    name = getattr(error, "sqlite_errorname", "")
    return (name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or type(error) is sqlite3.DatabaseError
            or isinstance(error, UnicodeDecodeError))  # a damaged schema, quoted in SQLite's message, is not UTF-8


FAILURES = (sqlite3.Error, UnicodeDecodeError)  # what SQLite work raises: a StoreError saying what to do


def brief(error: BaseException) -> str:
    """An error's text on one short line: SQLite quotes a whole damaged schema statement in its message."""
    text = " ".join(str(error).split())
    return text if len(text) <= 160 else text[:157] + "..."


def no_space(error: BaseException | None, home: Path | None = None) -> bool:
    """True when ``error`` (or what it wraps) means the store's disk is full, not that the file is bad."""
    while error is not None:
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        name = getattr(error, "sqlite_errorname", "")
        if name == "SQLITE_FULL" or name == "SQLITE_IOERR_SHMSIZE":  # the WAL index cannot grow: a full disk
            return True
        if name.startswith("SQLITE_IOERR") and home is not None:  # some I/O errors are a full disk in disguise
            try:
                return os.statvfs(home).f_bavail == 0
            except OSError:
                return False
        error = error.__cause__
    return False


def when_alone(step: Callable[[], T], tries: int = 50) -> T:
    """``step()``, retried briefly while the file is "locked".

    Switching a file to WAL, or creating tables another process creates at the same instant, needs a
    moment alone with the file, and SQLite answers such a clash at once instead of waiting its busy
    timeout (which would risk a deadlock): two processes opening a new file together hit it.
    """
    for attempt in range(tries - 1):
        try:
            return step()
        except sqlite3.OperationalError as error:
            if "locked" not in str(error):
                raise
            time.sleep(0.02 * (1 + attempt % 5))
    return step()  # the last try: its error is the caller's
