"""The run store: one SQLite file (WAL) under ``FLYTE_NB_HOME``, plus files for large values.

Why SQLite: it ships with Python, it is one file a user can copy or delete, and in WAL mode one
writer and many readers (other kernels, the Jupyter server) work at once. Every connection sets
``busy_timeout`` and writes in ``BEGIN IMMEDIATE`` transactions, so two kernels writing at the
same time queue for the lock instead of failing.

Values (inputs, outputs, pickled errors) up to ``INLINE_MAX`` bytes live in their row as a
BLOB: SQLite reads small blobs faster than the file system, a 10,000-action map does not leave
20,000 tiny files, and writing them costs no hashing. Larger values are files named by their
digest (:mod:`.values`: ``Store.pack`` and ``Store.unpack`` are the two directions).

A full disk loses nothing recorded: reads need no space (:meth:`Store.reading`), and the writer
waits for space (:mod:`.writer`). Processes: :mod:`.processes`; failures: :mod:`.failures`.

This module never repairs, downgrades or recreates a database it cannot read: a corrupt file,
another program's database or a schema newer than this code is a :class:`StoreError` that says
where the file is and what to do.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from ..engine.kernel import kernel
from ..errors import StoreError
from .committer import insert_many
from .failures import FAILURES, brief, is_corruption, no_space, when_alone
from .home import home_dir
from .processes import HOST, PID, TOKEN, process_alive, process_token
from .schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION
from .values import INLINE_MAX, ValueFiles, digest

__all__ = ["DB_NAME", "HOST", "INLINE_MAX", "LIVE_PHASES", "PID", "RUN_PHASES", "TOKEN", "Store", "brief", "digest",
           "get_store", "insert_many", "is_corruption", "no_space", "process_alive", "process_token",
           "recording_enabled"]

log = logging.getLogger("flyte_nb.store")

DB_NAME = "runs.sqlite"
BUSY_TIMEOUT_MS = 30_000
LIVE_PHASES = ("queued", "running")
RUN_PHASES = ("queued", "running", "succeeded", "failed", "aborted")


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


class Store(ValueFiles):
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
            when_alone(lambda: conn.execute("PRAGMA journal_mode = WAL"))  # persistent in the file
            conn.execute("PRAGMA synchronous = NORMAL")  # in WAL: survives process crashes, not power loss
        except StoreError:
            conn.close()
            raise
        except FAILURES as error:
            conn.close()
            raise self.error(error) from error
        return conn

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
            except FAILURES as error:
                conn.close()
                raise self.error(error) from error
        except StoreError as error:
            if not no_space(error, self.home):
                raise
            conn = self._read_only(error)
        try:
            yield conn
        except FAILURES as error:
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
        except FAILURES as error:
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
        except FAILURES as error:
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
            return StoreError(f"the disk holding the flyte_nb run store at {self.path} is full ({brief(error)}): "
                              "free some space there, or set FLYTE_NB_HOME to a folder on another disk")
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
                        self.mark_aborted(conn, name, "kernel exited")
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
                    self.mark_aborted(conn, name, "kernel exited")
            return True, conn.execute("SELECT phase FROM runs WHERE name = ?", (name,)).fetchone()[0]

    @staticmethod
    def mark_aborted(conn: sqlite3.Connection, name: str, reason: str) -> None:
        """Mark run ``name`` aborted for ``reason`` in the transaction of ``conn``, ended at its last event."""
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
                "WHERE run = runs.id), group_counts = NULL WHERE name = ?", (name,))  # groups: counted when read

    # ----------------------------------------------------------------- values

class _Stores(dict):
    """This kernel's stores by folder (a :class:`.kernel.Kernel` part)."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()


_kernel = kernel()


def recording_enabled() -> bool:
    """False when ``FLYTE_NB_STORE`` is ``off``/``0``/``false``/``no``: no run store, no cache."""
    return os.environ.get("FLYTE_NB_STORE", "on").strip().lower() not in ("off", "0", "false", "no")


def get_store(home: Path | None = None) -> Store:
    """The store under ``home`` (default: the current ``FLYTE_NB_HOME``), one object per folder."""
    home = (home or home_dir()).expanduser().absolute()
    stores = _kernel.part(_Stores)
    store = stores.get(home)
    if store is None:
        with stores.lock:
            store = stores.setdefault(home, Store(home))
    return store
