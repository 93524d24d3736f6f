"""The writer thread: one per kernel, it commits every run's records in batches.

It wakes every ``interval`` seconds (at once when a run finishes or a reader asks for a flush),
has each run's :class:`~.batch.RunBatch` drain its listener, builds rows outside any transaction, then writes all runs
of a store in one ``BEGIN IMMEDIATE`` transaction. A failure is logged and retried at the next
wake-up (the pending changes stay); a damaged database stops recording into it for this kernel.
At interpreter exit :meth:`Writer.shutdown` commits what is queued and marks runs still going
``aborted: kernel exited``.

The writer is also the kernel's ear for abort requests. Another process (the Jupyter server's
Runs panel) cannot reach into a kernel's engine, and the kernel's shell may be busy with a cell;
so it sets ``runs.abort_request`` and the writer, which polls the store anyway while runs are
live, hands the request to the run after its next batch (within about ``interval`` seconds).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from typing import TYPE_CHECKING

from ..errors import StoreError
from .committer import CommitProcess, Op, execute
from .store import BUSY_TIMEOUT_MS, INLINE_MAX, Store, is_corruption, no_space

if TYPE_CHECKING:
    from .batch import RunBatch

log = logging.getLogger("flyte_nb.store")

INTERVAL = 0.25  # seconds between batches while runs are live (a finishing run is written at once)
PROCESS_GIVE_UP = 3  # cycles the commit process failed, and this thread then did not, before it is given up
GIVE_UP = 10  # consecutive failed batches after which a store's pending runs stop being recorded
RETRY_FULL = 1.0  # seconds between attempts while the disk holding a store is full


class Writer:
    """The one thread per kernel that commits every run's records, whatever store they go to."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cycling = threading.RLock()  # held while the thread uses its connections (see forget)
        self._logs: list[RunBatch] = []
        self._wake = threading.Event()
        self._waiters: list[threading.Event] = []
        self._thread: threading.Thread | None = None
        self._conns: dict[Store, tuple[sqlite3.Connection, float]] = {}
        self._warned: set[str] = set()
        self.exiting = False
        self.interval = INTERVAL
        self.locked_since: float | None = None  # since when it waits for ``locking``'s write lock: a run of
        self.locking: Store | None = None  # that store waiting on this writer that long is stuck behind
        # another process, not just slow (RunListener._catch_up)
        self._failures: dict[Store, int] = {}
        self._full: dict[Store, float] = {}  # stores whose disk is full: when the last attempt failed
        self._process: CommitProcess | None = CommitProcess()  # see committer: SQLite work off this GIL
        self._process_failures = 0  # cycles in a row the process failed and this thread did not

    def add(self, run_log: RunBatch) -> None:
        with self._lock:
            self._logs.append(run_log)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._main, name="flyte_nb-store", daemon=True)
                self._thread.start()
        self._wake.set()  # an idle writer sleeps long: start batching now

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        """Write now rather than at the next interval (a run finished)."""
        self._wake.set()

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until everything queued before this call is committed (or could not be)."""
        thread = self._thread
        if thread is None or not thread.is_alive() or threading.current_thread() is thread:
            return True
        done = threading.Event()
        with self._lock:
            self._waiters.append(done)
        self._wake.set()
        return done.wait(timeout)

    def _main(self) -> None:
        while True:
            self._wake.wait(self.interval if self._logs else 1.0)
            self._wake.clear()
            with self._lock:
                waiters, self._waiters = self._waiters, []
                logs = list(self._logs)
            with self._cycling:
                try:
                    self._cycle(logs)
                except Exception:  # noqa: BLE001 - keep the thread alive whatever happens
                    log.warning("flyte_nb: the run store writer failed", exc_info=True)
                finally:
                    self.locked_since = None
                    for waiter in waiters:
                        waiter.set()
                self._close_idle()

    def _cycle(self, logs: list[RunBatch]) -> None:
        exiting = self.exiting  # read once, before draining: a cycle already under way when the interpreter
        # began to exit may have drained before a run's last events; only the next one is the final word
        by_store: dict[Store, list[RunBatch]] = {}
        for run_log in logs:
            by_store.setdefault(run_log.store, []).append(run_log)
        for store, group in by_store.items():
            for run_log in group:
                run_log.drain()  # even while the disk is full: the engine must not wait for it (see RunListener)
            failed_at = self._full.get(store)
            if failed_at is not None and not exiting and time.monotonic() - failed_at < RETRY_FULL:
                continue
            try:
                for run_log in group:
                    run_log.claim()
                conn = self._conn(store)
                ops = [op for run_log in group for op in run_log.build(conn)]
                if ops or exiting:
                    self._commit(store, conn, ops, group if exiting else None)
            except (StoreError, sqlite3.Error, OSError) as error:
                self._failed(store, group, error, exiting)
                continue
            self._failures.pop(store, None)
            store.fresh.clear()  # committed rows name them now
            if self._full.pop(store, None) is not None:
                log.warning("flyte_nb: the run store at %s has space again: recording resumed, nothing was lost",
                            store.path)
            self.abort_requests(conn, group)
            for run_log in group:
                run_log.committed()
                if exiting:
                    run_log.closed = True
        with self._lock:
            self._logs = [run_log for run_log in self._logs if not run_log.closed]

    def _commit(self, store: Store, conn: sqlite3.Connection, ops: list[Op], exiting: list[RunBatch] | None) -> None:
        """Commit one store's ops: in the commit process when it can, else (or at exit) in this thread.

        A cycle the process could not commit is done here again, so that a failure raises the real
        error for :meth:`_failed`; one this thread then commits was the process's own fault.
        """
        self.locking, self.locked_since = store, time.monotonic()  # until BEGIN IMMEDIATE has the lock
        process = self._process if exiting is None and os.environ.get("FLYTE_NB_STORE_PROCESS") != "off" else None
        if process is not None:
            why = process.commit(str(store.path), str(store.blob_dir), INLINE_MAX, BUSY_TIMEOUT_MS, ops, self._locked)
            if why is None:
                self._process_failures = 0
                return
            log.debug("flyte_nb: the commit process did not commit (%s); the writer thread does", why)
        with store.writing(conn):
            self.locked_since = None
            execute(conn, ops, store.pack, INLINE_MAX)
            for run_log in exiting or ():
                if not run_log.finished:
                    store.mark_aborted(conn, run_log.state.name, "kernel exited")
        if process is not None:
            self._process_failures += 1
            if self._process_failures >= PROCESS_GIVE_UP:
                log.warning("flyte_nb: the run store's commit process failed %d times where the writer thread did not "
                            "(%s); the writer thread commits from now on", self._process_failures, why)
                process.close()
                self._process = None

    def _locked(self) -> None:
        self.locked_since = None

    @staticmethod
    def abort_requests(conn: sqlite3.Connection, group: list[RunBatch]) -> None:
        """Hand abort requests recorded by other processes to the live runs they name."""
        live = {run_log.run_id: run_log for run_log in group
                if not run_log.finished and not run_log.abort_seen and run_log.on_abort is not None}
        if not live:
            return
        marks = ", ".join("?" * len(live))
        try:
            found = conn.execute(f"SELECT id, abort_request FROM runs WHERE abort_request IS NOT NULL AND id IN ({marks})",
                                 tuple(live)).fetchall()
        except sqlite3.Error as error:  # a busy or damaged file: the next cycle asks again
            log.debug("flyte_nb: reading abort requests failed: %s", error)
            return
        for run_id, reason in found:
            run_log = live[run_id]
            run_log.abort_seen = True
            try:
                run_log.on_abort(reason or "aborted from the Runs panel")  # type: ignore[misc]
            except Exception:  # noqa: BLE001 - one run's failure must not stop the writer
                log.warning("flyte_nb: aborting run %s on request failed", run_log.state.name, exc_info=True)

    def _failed(self, store: Store, group: list[RunBatch], error: BaseException, exiting: bool) -> None:
        """A batch could not be committed: retry later, or give these runs up (and the files made for them).

        A full disk is waited out for as long as the kernel lives (the pending changes stay in memory,
        as the run's own state does): one warning when it fills, one when recording resumes, and at
        exit one that says what could not be recorded. Other failures are retried ``GIVE_UP`` times.
        """
        cause = error.__cause__ if isinstance(error, StoreError) else error
        damaged = isinstance(cause, sqlite3.Error) and is_corruption(cause)
        names = ", ".join(run_log.state.name for run_log in group)
        if no_space(error, store.home):
            if store not in self._full:
                log.warning("flyte_nb: the disk holding the run store at %s is full (%s); runs %s are kept in memory "
                            "and recorded when space returns", store.path, error, names)
            self._full[store] = time.monotonic()
            give_up = exiting
            if give_up:
                log.warning("flyte_nb: the disk holding the run store at %s is still full at exit: the last changes "
                            "of runs %s are not recorded", store.path, names)
        else:
            failures = self._failures[store] = self._failures.get(store, 0) + 1
            give_up = damaged or failures >= GIVE_UP  # never keep writing into a damaged file; never hoard forever
            if str(error) not in self._warned or give_up:
                self._warned.add(str(error))
                then = "recording of these runs stops" if give_up else "retrying"
                log.warning("flyte_nb: writing to the run store failed (%s); %s", error, then)
        if give_up:
            self._give_up(store, group)
        elif store not in self._full:
            self._drop_conn(store)

    def _give_up(self, store: Store, group: list[RunBatch]) -> None:
        self._drop_conn(store)
        try:
            with store.reading() as conn:  # works on a full disk
                store.discard_fresh(conn)  # no value file without the row that names it
        except StoreError:
            store.discard_fresh(None)
        self._failures.pop(store, None)
        self._full.pop(store, None)
        for run_log in group:
            run_log.closed = True

    def _conn(self, store: Store) -> sqlite3.Connection:
        entry = self._conns.get(store)
        conn = entry[0] if entry else store.connect()
        self._conns[store] = (conn, time.monotonic())
        return conn

    def forget(self, store: Store) -> None:
        """Close this thread's connection to ``store`` from any thread (a connection closed while the
        writer uses it crashes the interpreter, as a full CI run under load once did)."""
        with self._cycling:
            self._drop_conn(store)

    def _drop_conn(self, store: Store) -> None:
        entry = self._conns.pop(store, None)
        if entry is not None:
            entry[0].close()

    def _close_idle(self) -> None:
        """Keep few connections: each test (or ``init(home=...)``) may bring a store of its own."""
        now = time.monotonic()
        stale = [s for s, (_, used) in self._conns.items() if now - used > 5.0]
        stale += sorted(self._conns, key=lambda s: self._conns[s][1])[:-4]
        for store in set(stale):
            self._drop_conn(store)

    def close(self) -> None:
        """``Kernel.close()``: as at interpreter exit, then end the commit process."""
        self.shutdown()
        with self._cycling:
            if self._process is not None:
                self._process.close()

    def shutdown(self, timeout: float = 5.0) -> None:
        """At interpreter exit: commit what is queued, mark runs still going ``aborted: kernel exited``."""
        if self._thread is None or not self._thread.is_alive():
            return
        self.exiting = True
        self.flush(timeout)
