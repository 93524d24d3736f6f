"""The run store: one SQLite file (WAL) under ``FLYTE_NB_HOME``, plus files for large values.

Why SQLite: it ships with Python, it is one file a user can copy or delete, and in WAL mode one
writer and many readers (other kernels, the Jupyter server) work at once. Every connection sets
``busy_timeout`` and writes in ``BEGIN IMMEDIATE`` transactions, so two kernels writing at the
same time queue for the lock instead of failing.

Values (inputs, outputs, pickled errors) up to ``INLINE_MAX`` bytes live in their row as a
BLOB: SQLite reads small blobs faster than the file system, a 10,000-action map does not leave
20,000 tiny files, and writing them costs no hashing. Larger values are files under ``blobs/``
beside the database, named by their content digest (the row holds the digest as TEXT), written
atomically and checked against the digest when read, so a damaged file is an error, not a
wrong value. :func:`pack` and :meth:`Store.unpack` are the two directions.

This module never repairs, downgrades or recreates a database it cannot read: a corrupt file,
another program's database or a schema newer than this code is a :class:`StoreError` that says
where the file is and what to do.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import re
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import StoreError
from .home import home_dir
from .schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION

log = logging.getLogger("flyte_nb.store")

DB_NAME = "runs.sqlite"
INLINE_MAX = 32 * 1024
BUSY_TIMEOUT_MS = 30_000
LIVE_PHASES = ("queued", "running")
RUN_PHASES = ("queued", "running", "succeeded", "failed", "aborted")
_DIGEST = re.compile(r"[0-9a-f]{32}")


def _statements(script: str) -> list[str]:
    """Split a migration into statements (``;`` inside comments or strings does not split)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current)
            current = ""
    if current.strip():
        statements.append(current)
    return statements


def is_corruption(error: BaseException) -> bool:
    """True for SQLite's "not a database" / "malformed" errors (as opposed to locks or full disks)."""
    name = getattr(error, "sqlite_errorname", "")
    return (name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or type(error) is sqlite3.DatabaseError
            or isinstance(error, UnicodeDecodeError))  # a damaged schema, quoted in SQLite's message, is not UTF-8


_FAILURES = (sqlite3.Error, UnicodeDecodeError)  # what SQLite work raises: a StoreError saying what to do


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


def digest(data: bytes) -> str:
    """Content address of a value: 128-bit BLAKE2b, hex."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _boot_token() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def process_token(pid: int) -> str | None:
    """Identifies one process lifetime (boot id + start time), so a reused pid is not mistaken for it."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        try:
            import psutil
        except ImportError:
            return None
        try:
            return f"psutil:{psutil.Process(pid).create_time()}"
        except Exception:  # noqa: BLE001 - gone, or no access
            return None
    if fields[0] == "Z":  # a zombie has exited; it only waits to be reaped
        return None
    return f"{_boot_token()}:{fields[19]}"


HOST = socket.gethostname()
PID = os.getpid()
TOKEN = process_token(PID)


def process_alive(pid: int, token: str | None) -> bool:
    """Whether the kernel that recorded a run still exists on this host."""
    if pid == os.getpid():
        return token is None or token == process_token(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, belongs to someone else
    current = process_token(pid)
    if current is None:  # we can tell processes apart here, yet not this one: a zombie, or just gone
        return TOKEN is None
    return token is None or current == token


class Store:
    """One run store: a database file, its blob folder, and how to connect to them safely."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.path = home / DB_NAME
        self.blob_dir = home / "blobs"
        self._ready = False
        self._lock = threading.Lock()
        self.task_ids: dict[tuple[str, str | None, str], int] = {}  # the writer's cache of tasks rows
        self.fresh: list[str] = []  # value files the writer created that no committed row names yet

    def task_id(self, conn: sqlite3.Connection, name: str, backend: str | None, code: str) -> int:
        """The ``tasks`` row of a task identity, created on first use (writer thread)."""
        key = (name, backend, code)
        found = self.task_ids.get(key)
        if found is None:
            conn.execute("INSERT OR IGNORE INTO tasks (name, backend, code) VALUES (?, ?, ?)", key)
            found = self.task_ids[key] = conn.execute(
                "SELECT id FROM tasks WHERE code = ? AND name = ? AND backend IS ?", (code, name, backend)).fetchone()[0]
        return found

    def __repr__(self) -> str:
        return f"<Store {self.path}>"

    # ------------------------------------------------------------ connecting
    def connect(self) -> sqlite3.Connection:
        """A new connection; the first one in this process validates, migrates and reaps the file."""
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                   check_same_thread=False)
        except (OSError, sqlite3.Error) as error:
            raise StoreError(f"cannot open the flyte_nb run store at {self.path}: {brief(error)}") from error
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if not self._ready:
                with self._lock:
                    if not self._ready:
                        self._prepare(conn)
                        self._ready = True
            self._wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")  # in WAL: survives process crashes, not power loss
        except StoreError:
            conn.close()
            raise
        except _FAILURES as error:
            conn.close()
            raise self.error(error) from error
        return conn

    @staticmethod
    def _wal(conn: sqlite3.Connection) -> None:
        """WAL mode (persistent in the file). Switching needs a moment alone with the file, which a
        kernel creating the store at the same instant may not give at once: retry briefly."""
        for attempt in range(50):
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or attempt == 49:
                    raise
                time.sleep(0.02 * (1 + attempt % 5))

    @contextlib.contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """A short-lived connection; SQLite errors become :class:`StoreError`.

        On a full disk a normal connection cannot even open (the WAL index must be created and
        grown): then, if nothing waits in the WAL, the file itself holds every commit and is read
        read-only, without locks or side files. Reading never needs free space.
        """
        try:
            conn = self.connect()
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # opens the WAL and its index
            except _FAILURES as error:
                conn.close()
                raise self.error(error) from error
        except StoreError as error:
            if not no_space(error, self.home):
                raise
            conn = self._read_only(error)
        try:
            yield conn
        except _FAILURES as error:
            raise self.error(error) from error
        finally:
            conn.close()

    def _read_only(self, cause: StoreError) -> sqlite3.Connection:
        """A read-only, lock-free connection to the file alone (see :meth:`reading`), checked as ours."""
        wal = self.path.with_name(self.path.name + "-wal")
        if not self.path.exists() or (wal.exists() and wal.stat().st_size > 0):
            raise cause  # commits wait in the WAL: the file alone would show an older store
        try:
            conn = sqlite3.connect(f"{self.path.as_uri()}?mode=ro&immutable=1", uri=True, isolation_level=None,
                                   check_same_thread=False)
            app_id, version = conn.execute("SELECT (SELECT application_id FROM pragma_application_id), "
                                           "(SELECT user_version FROM pragma_user_version)").fetchone()
        except _FAILURES as error:
            raise self.error(error) from error
        if app_id != APPLICATION_ID or version != SCHEMA_VERSION:
            conn.close()
            raise cause  # another program's file, or one to migrate (which needs space): as when writable
        return conn

    @contextlib.contextmanager
    def writing(self, conn: sqlite3.Connection | None = None) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``: take the lock first, wait for it politely).

        A failure rolls back what SQLite has not rolled back itself (on a full disk it already
        has): the error raised is the one that happened, never "no transaction is active".
        """
        own = conn is None
        conn = conn or self.connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
        except _FAILURES as error:
            raise self.error(error) from error
        finally:
            if own:
                conn.close()

    def error(self, error: BaseException) -> BaseException:
        """The exception to raise for a SQLite error: corruption is a StoreError saying what to do."""
        if is_corruption(error):
            return StoreError(
                f"the flyte_nb run store at {self.path} is damaged or not a database ({brief(error)}). flyte_nb will "
                "not modify it: move it aside (keep it for recovery with the sqlite3 .recover command) or point "
                "FLYTE_NB_HOME at another folder, and a new store is created.")
        if no_space(error, self.home):
            return StoreError(f"the disk holding the flyte_nb run store at {self.path} is full ({brief(error)}): free some "
                              "space there, or set FLYTE_NB_HOME to a folder on another disk")
        if isinstance(error, sqlite3.OperationalError):
            return StoreError(f"the flyte_nb run store at {self.path} could not be used: {brief(error)}")
        return error

    # ---------------------------------------------------- schema and migration
    def _prepare(self, conn: sqlite3.Connection) -> None:
        """Check the file is ours and not from the future, bring it to this schema, mark dead runs."""
        # one statement, so one snapshot: another kernel may be creating the store right now, and
        # tables without the application id (its migration half seen) would look like a foreign file
        app_id, version, tables = conn.execute(
            "SELECT (SELECT application_id FROM pragma_application_id), (SELECT user_version FROM pragma_user_version), "
            "(SELECT count(*) FROM sqlite_master)").fetchone()
        if app_id != APPLICATION_ID and (app_id != 0 or tables):
            raise StoreError(
                f"{self.path} is a SQLite database of another program (application id {app_id:#x}), not a flyte_nb "
                "run store; flyte_nb leaves it untouched. Move it or set FLYTE_NB_HOME to another folder.")
        if version > SCHEMA_VERSION:
            raise StoreError(self._newer(version))
        if version < SCHEMA_VERSION:
            self.migrate(conn)
        self.reap(conn)

    def _newer(self, version: int) -> str:
        return (f"the flyte_nb run store at {self.path} has schema version {version}, newer than this flyte_nb "
                f"understands ({SCHEMA_VERSION}); it was written by a newer flyte_nb. Upgrade flyte_nb, or set "
                "FLYTE_NB_HOME to another folder. The file was not modified.")

    def migrate(self, conn: sqlite3.Connection) -> None:
        """Apply the missing migrations in one transaction (another kernel may be doing the same)."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]  # re-read under the lock
            if version > SCHEMA_VERSION:
                raise StoreError(self._newer(version))
            try:
                for step in MIGRATIONS[version:SCHEMA_VERSION]:
                    for statement in _statements(step):  # not executescript: it would commit our transaction
                        conn.execute(statement)
            except sqlite3.OperationalError as error:  # tables a version this old cannot have: a damaged header
                raise StoreError(
                    f"the flyte_nb run store at {self.path} says schema version {version} but does not look like it "
                    f"({brief(error)}): it may be damaged. flyte_nb will not modify it: move it aside or point "
                    "FLYTE_NB_HOME at another folder.") from error
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise

    # ------------------------------------------------------------ dead kernels
    def reap(self, conn: sqlite3.Connection | None = None) -> list[str]:
        """Mark runs left queued/running by a kernel that no longer exists as ``aborted: kernel exited``.

        Only runs recorded on this host are judged (a pid means nothing elsewhere). Returns their names.
        Marking is best effort: on a full disk nothing is marked (and reading goes on); the next reap does it.
        """
        own = conn is None
        try:
            conn = conn or self.connect()
        except StoreError as error:
            if no_space(error, self.home):
                return []
            raise
        try:
            live = conn.execute(f"SELECT name, pid, process FROM runs WHERE host = ? AND phase IN {LIVE_PHASES}",
                                (HOST,)).fetchall()
            dead = [name for name, pid, token in live if pid is not None and not process_alive(pid, token)]
            if dead:
                with self.writing(conn):
                    for name in dead:
                        self._mark_aborted(conn, name, "kernel exited")
            return dead
        except (StoreError, sqlite3.Error) as error:
            if no_space(error, self.home):
                log.debug("flyte_nb: runs of dead kernels not marked yet: %s", error)
                return []
            raise
        finally:
            if own:
                conn.close()

    def request_abort(self, name: str, reason: str) -> tuple[bool, str]:
        """Ask the kernel that owns run ``name`` to abort it: (whether it was live, its phase now).

        The owning kernel's writer sees the request within about a quarter of a second (see
        :mod:`.writer`). A run whose kernel has died meanwhile is marked aborted here and now.
        Raises ``KeyError`` for an unknown run.
        """
        with self.reading() as conn:
            row = conn.execute("SELECT phase, pid, process, host FROM runs WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise KeyError(name)
            phase, pid, token, host = row
            if phase not in LIVE_PHASES:
                return False, phase
            with self.writing(conn):
                conn.execute("UPDATE runs SET abort_request = ?, updated_at = ? WHERE name = ? AND abort_request IS NULL",
                             (reason, time.time(), name))
                if host == HOST and pid is not None and not process_alive(pid, token):
                    self._mark_aborted(conn, name, "kernel exited")
            return True, conn.execute("SELECT phase FROM runs WHERE name = ?", (name,)).fetchone()[0]

    @staticmethod
    def _mark_aborted(conn: sqlite3.Connection, name: str, reason: str) -> None:
        last = conn.execute(
            "SELECT max(max(coalesce(ended_at, 0), coalesce(started_at, 0), coalesce(queued_at, 0))) "
            "FROM actions WHERE run = (SELECT id FROM runs WHERE name = ?)", (name,)).fetchone()[0]
        row = conn.execute("SELECT updated_at, started_at, created_at FROM runs WHERE name = ?", (name,)).fetchone()
        ended = max([t for t in (last, *(row or ())) if t] or [time.time()])
        changed = conn.execute(
            f"UPDATE runs SET phase = 'aborted', abort_reason = ?, ended_at = ?, updated_at = ?, "
            f"error_type = 'flyte_nb.errors.RunAbortedError', error_message = ? "
            f"WHERE name = ? AND phase IN {LIVE_PHASES}",
            (reason, ended, time.time(), f"run {name} was aborted: {reason}", name)).rowcount
        if changed:
            conn.execute(
                "UPDATE actions SET phase = 'cancelled', ended_at = coalesce(ended_at, ?), note = coalesce(note, ?) "
                "WHERE run = (SELECT id FROM runs WHERE name = ?) AND phase IN ('queued', 'waiting', 'running')",
                (ended, reason, name))
            # the counts were the dead kernel's last word (actions running, some never written): from now on
            # they are what the actions say, so the panel's counts and its action list agree
            conn.execute(
                "UPDATE runs SET counts = (SELECT json_group_object(phase, n) FROM (SELECT phase, count(*) AS n "
                "FROM actions WHERE run = runs.id GROUP BY phase)), actions = (SELECT count(*) FROM actions "
                "WHERE run = runs.id) WHERE name = ?", (name,))

    # ----------------------------------------------------------------- values
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
        key = digest(data)
        path = self.blob_path(key)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{key}.{os.getpid()}.{threading.get_ident()}.tmp")
            try:
                tmp.write_bytes(data)
                os.replace(tmp, path)  # atomic: readers never see half a file; same content, so races are harmless
            except BaseException:
                tmp.unlink(missing_ok=True)  # a full disk leaves no half-written file behind
                raise
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


_stores: dict[Path, Store] = {}
_stores_lock = threading.Lock()


def recording_enabled() -> bool:
    """False when ``FLYTE_NB_STORE`` is ``off``/``0``/``false``/``no``: no run store, no cache."""
    return os.environ.get("FLYTE_NB_STORE", "on").strip().lower() not in ("off", "0", "false", "no")


def get_store(home: Path | None = None) -> Store:
    """The store under ``home`` (default: the current ``FLYTE_NB_HOME``), one object per folder."""
    home = (home or home_dir()).expanduser().absolute()
    store = _stores.get(home)
    if store is None:
        with _stores_lock:
            store = _stores.setdefault(home, Store(home))
    return store
