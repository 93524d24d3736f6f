"""Committing a writer cycle's statements in one transaction, in a process of its own.

Why a process: while a run is busy its engine thread is the bottleneck, and whatever the writer
thread does holds the same GIL. Binding SQLite parameters, building the rows of succeeded actions
and pickling their values cost the writer thread ~5 us per action, which a 1 ms-task run paid in
wall time (``benchmarks/bench_store.py``: recording +34 % in the thread). Here they run on the
other core under a GIL of their own; the writer thread only hands over columns (~0.6 us per action).

The ops a cycle asks for (the same :func:`execute` runs them in the writer thread when no process
is at hand):

- ``("rows", head, width, values, tail)``: ``INSERT`` rows given flat (:func:`insert_many`);
- ``("sql", statement, params)``: one statement;
- ``("succeeded", head, tail, run, task, name, numbers, parents, groups, indexes, attempts, queued,
  started, ended, args, outputs)``: plain rows of one task's succeeded actions, built here from
  columns, each lone argument recorded as ``{name: arg}``.

Protocol (frames: a 4-byte length and a pickle): ``("begin", db, blobs, inline_max, busy_ms)``
answered ``("locked",)`` once ``BEGIN IMMEDIATE`` holds the lock; then op frames and ``("commit",)``,
answered ``("committed",)``. Any failure is answered ``("error", text)`` and rolled back. The writer
then does the cycle again in its own thread, which raises the real error for its failure handling
(a full disk, a damaged file): every statement is an upsert, so one done twice is harmless.

Standard library only, and started by path in isolated mode (``python -I committer.py``): the child
imports neither flyte_nb nor what it depends on, so it starts in ~25 ms. The value-file format
(:func:`digest`, :func:`write_value_file`) lives here for that reason; :mod:`.values` uses it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import select
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from itertools import chain, repeat
from typing import Any

Op = tuple
_LENGTH = struct.Struct(">I")
_dumps = pickle.dumps
REPLY_MARGIN = 60.0  # seconds beyond SQLite's busy timeout a reply may take before the child counts as stuck


# ---------------------------------------------------------------------------- value files
def digest(data: bytes) -> str:
    """Content address of a value: 128-bit BLAKE2b, hex."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def write_value_file(blob_dir: str, data: bytes) -> tuple[str, bool]:
    """Write ``data`` as the value file named by its digest, atomically; (digest, whether it is new)."""
    key = digest(data)
    folder = os.path.join(blob_dir, key[:2])
    path = os.path.join(folder, key)
    if os.path.exists(path):
        return key, False
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        with open(tmp, "wb") as file:
            file.write(data)
        os.replace(tmp, path)  # atomic: readers never see half a file; same content, so races are harmless
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)  # a full disk leaves no half-written file behind
        raise
    return key, True


# ---------------------------------------------------------------------------- executing ops
def insert_many(conn: sqlite3.Connection, head: str, width: int, values: list, tail: str = "") -> None:
    """``INSERT`` many rows, given as one flat list of ``width`` values per row, with few statements.

    ``executemany`` steps SQLite once per row and gives up the GIL each time; while the engine
    thread is busy, taking it back can cost a whole switch interval (5 ms) per row. Hundreds of
    rows per statement keep the SQLite work off the GIL in long stretches instead.
    """
    chunk = max(1, min(500, 30_000 // width)) * width
    one = "(" + ", ".join("?" * width) + ")"
    for start in range(0, len(values), chunk):
        part = values[start:start + chunk]
        conn.execute(f"{head} VALUES {', '.join([one] * (len(part) // width))} {tail}", part)


def execute(conn: sqlite3.Connection, ops: Iterable[Op], pack: Callable[[bytes], Any], inline_max: int) -> None:
    """Run ``ops`` on ``conn`` (inside the caller's transaction); ``pack`` stores a value too large for its row."""
    for op in ops:
        kind = op[0]
        if kind == "rows":
            insert_many(conn, op[1], op[2], op[3], op[4])
        elif kind == "succeeded":
            insert_many(conn, op[1], 13, succeeded_rows(op[3:], pack, inline_max), op[2])
        elif kind == "sql":
            conn.execute(op[1], op[2])
        else:
            raise ValueError(f"unknown op {kind!r}")


def succeeded_rows(columns: tuple, pack: Callable[[bytes], Any], inline_max: int) -> list[Any]:
    """Plain ``actions`` rows (flat, 13 values each) from a ``succeeded`` op's columns."""
    run, task, name, numbers, parents, groups, indexes, attempts, queued, started, ended, args, outputs = columns
    inputs = _values(map(dict.fromkeys, repeat((name,)), args), pack, inline_max)  # {name: arg}
    results = _values(outputs, pack, inline_max)
    return list(chain.from_iterable(zip(
        repeat(run), numbers, parents, repeat(task), groups, indexes, repeat("succeeded"), attempts, queued, started,
        ended, inputs, results)))


def _values(values: Iterable[Any], pack: Callable[[bytes], Any], inline_max: int) -> list[Any]:
    """Each value pickled as the run store records it, bound as a ``bytearray`` (never adapted) or,
    when too large for its row, as its file's digest. The fast path only keeps values that are
    their own snapshot (numbers, strings, bytes, tuples of them): for those ``pickling.for_store``
    gives plain pickle's bytes, "__main__" in a string or not (cloudpickle writes the same)."""
    data = list(map(_dumps, values, repeat(5)))
    if max(map(len, data), default=0) > inline_max:
        return [bytearray(d) if len(d) <= inline_max else pack(d) for d in data]
    return list(map(bytearray, data))


# ---------------------------------------------------------------------------- frames
def _send(fd: int, message: Any, timeout: float | None = None) -> None:
    data = _dumps(message, 5)
    view = memoryview(_LENGTH.pack(len(data)) + data)
    while view:
        if timeout is not None and not select.select([], [fd], [], timeout)[1]:
            raise TimeoutError("the commit process takes no input")
        view = view[os.write(fd, view):]


def _receive(fd: int, timeout: float | None = None) -> Any:
    """The next message, or None at end of input."""
    head = _read(fd, _LENGTH.size, timeout)
    if head is None:
        return None
    body = _read(fd, _LENGTH.unpack(head)[0], timeout)
    if body is None:
        return None
    return pickle.loads(body)


def _read(fd: int, size: int, timeout: float | None) -> bytes | None:
    parts, left = [], size
    while left:
        if timeout is not None and not select.select([fd], [], [], timeout)[0]:
            raise TimeoutError("the commit process does not answer")
        part = os.read(fd, min(left, 1 << 20))
        if not part:
            return None
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


# ---------------------------------------------------------------------------- the child
class _Files:
    """Value files one transaction created: removed again if it does not commit."""

    def __init__(self, blob_dir: str) -> None:
        self.blob_dir = blob_dir
        self.created: list[str] = []

    def pack(self, data: bytes) -> str:
        key, new = write_value_file(self.blob_dir, data)
        if new:
            self.created.append(os.path.join(self.blob_dir, key[:2], key))
        return key

    def discard(self) -> None:
        for path in self.created:
            with contextlib.suppress(OSError):
                os.unlink(path)


def _connect(db: str, busy_ms: int) -> sqlite3.Connection:
    """A connection for one transaction. None is kept between cycles: a kernel killed while idle must
    leave no process with its store open (the last connection to close tidies the WAL's side files)."""
    if not os.path.exists(db):  # never create a database: the writer thread made and checked it
        raise FileNotFoundError(f"no run store at {db}")
    conn = sqlite3.connect(db, timeout=busy_ms / 1000, isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
        conn.execute("PRAGMA synchronous = NORMAL")
    except BaseException:
        conn.close()
        raise
    return conn


def _transaction(begin: tuple) -> None:
    """One cycle's transaction, from ``begin`` to the ``commit`` frame."""
    _, db, blob_dir, inline_max, busy_ms = begin
    try:
        conn = _connect(db, busy_ms)
    except Exception as error:  # noqa: BLE001 - said to the writer, which does the cycle itself
        _send(1, ("error", f"{type(error).__name__}: {error}"))
        return
    try:
        _send(1, _run(conn, blob_dir, inline_max))
    finally:
        conn.close()


def _run(conn: sqlite3.Connection, blob_dir: str, inline_max: int) -> tuple:
    try:
        conn.execute("BEGIN IMMEDIATE")
    except Exception as error:  # noqa: BLE001
        return ("error", f"{type(error).__name__}: {error}")
    _send(1, ("locked",))
    files, failed = _Files(blob_dir), None
    while True:
        message = _receive(0)
        if message is None:
            raise SystemExit(0)  # the kernel is gone: SQLite rolls back
        if message[0] == "commit":
            break
        if failed is None:
            try:
                execute(conn, (message,), files.pack, inline_max)
            except Exception as error:  # noqa: BLE001
                failed = error
    if failed is None:
        try:
            conn.execute("COMMIT")
            return ("committed",)
        except Exception as error:  # noqa: BLE001
            failed = error
    with contextlib.suppress(sqlite3.Error):
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    files.discard()
    return ("error", f"{type(failed).__name__}: {failed}")


def main() -> None:
    """The child's loop: one transaction per ``begin`` until the kernel closes the pipe."""
    while True:
        message = _receive(0)
        if message is None:
            return
        if message[0] == "begin":
            _transaction(message)


# ---------------------------------------------------------------------------- the writer's side
class CommitProcess:
    """The writer thread's handle on its child (only the writer thread uses it)."""

    def __init__(self) -> None:
        self._child: subprocess.Popen[bytes] | None = None
        self._pid = os.getpid()

    def commit(self, db: str, blob_dir: str, inline_max: int, busy_ms: int, ops: list[Op],
               locked: Callable[[], None]) -> str | None:
        """Commit ``ops`` in the child; None when done, else why not (the caller then does it itself)."""
        timeout = busy_ms / 1000 + REPLY_MARGIN
        try:
            child = self._start()
            stdin, stdout = child.stdin.fileno(), child.stdout.fileno()  # type: ignore[union-attr]
            _send(stdin, ("begin", db, blob_dir, inline_max, busy_ms), timeout)
            reply = _receive(stdout, timeout)
            if reply is None or reply[0] != "locked":
                return self._failed(reply)
            locked()
            for op in ops:
                _send(stdin, op, timeout)
            _send(stdin, ("commit",), timeout)
            reply = _receive(stdout, timeout)
        except (OSError, TimeoutError, EOFError, pickle.UnpicklingError) as error:
            self.close()
            return f"{type(error).__name__}: {error}"
        return None if reply is not None and reply[0] == "committed" else self._failed(reply)

    def _failed(self, reply: Any) -> str:
        if reply is None:  # the child died
            self.close()
            return "the commit process exited"
        return str(reply[1]) if reply[0] == "error" else f"unexpected reply {reply!r}"

    def _start(self) -> subprocess.Popen[bytes]:
        if self._pid != os.getpid():  # a forked copy of the kernel: the pipes are the parent's
            self._child, self._pid = None, os.getpid()
        child = self._child
        if child is not None and child.poll() is not None:
            self.close()
            child = None
        if child is None:
            child = self._child = subprocess.Popen(
                [sys.executable, "-I", os.path.abspath(__file__)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, close_fds=True, start_new_session=True)  # a notebook's ^C is not its own
        return child

    def close(self) -> None:
        """End the child (it sees its input close) and reap it."""
        child, self._child = self._child, None
        if child is None or self._pid != os.getpid():
            return
        for stream in (child.stdin, child.stdout):
            with contextlib.suppress(OSError):
                stream.close()  # type: ignore[union-attr]
        try:
            child.wait(2.0)
        except subprocess.TimeoutExpired:
            child.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(2.0)


if __name__ == "__main__":
    main()
