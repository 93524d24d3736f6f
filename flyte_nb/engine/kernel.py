"""The Kernel: everything one kernel process holds across runs, in one object with one ``close()``.

The engine loop, the event listeners that hear every run, the loaded backends, the runs this
kernel keeps, the run names it issued, the sync-body threads, the ``init(project=, domain=, org=)``
names, and per-kernel objects of the layers above (the run store's writer, the stores, cache
indexes, rate budgets, the chosen home, what actions keep: traced results, reports, checkpoints,
env vars held) that the engine must not import: those register as *parts*, keyed by their class,
and are closed with the kernel (a :class:`Recent` part keeps only the newest keys).
No other module keeps kernel state in a global: ``tests/test_module_state.py`` says which may.

``close()`` runs once at interpreter exit: every backend's ``shutdown()`` (workers, containers,
connections), then every part's ``close()`` (the writer commits the last rows). ``reset()`` closes
and starts afresh, for tests.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from .listeners import Listeners
from .names import RunNames

if TYPE_CHECKING:
    from .backend import Backend
    from .events import Listener
    from .loop import EngineLoop

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
log = logging.getLogger("flyte_nb")

SHUTDOWN_TIMEOUT = 10.0  # seconds for all backends to let go of workers, containers, connections


_PROJECT_NAMES = ("project", "domain", "org")


class Kernel:
    """Kernel-wide state: one per kernel process (see :func:`kernel`)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.engine: EngineLoop | None = None  # started on first use (``loop.engine()``)
        self.listeners = Listeners()  # hear every run's events
        self.backends: dict[str, Backend] = {}  # loaded by name (``backend.get_backend``)
        self.default_backend = "inline"
        self.names = RunNames()  # the one place run names are made unique
        self.runs: dict[str, Any] = {}  # the api's Run handles this kernel keeps, oldest first
        self.echo = True  # captured output is also printed where it was written
        self.project_names: dict[str, str | None] = dict.fromkeys(_PROJECT_NAMES)  # ``init(project=, domain=, org=)``
        self._parts: dict[type, Any] = {}
        self.closed = False

    # ------------------------------------------------------------------ parts
    def part(self, key: type[T], make: Callable[[], T] | None = None) -> T:
        """This kernel's one ``key`` object, made by ``make()`` (default ``key()``) on first use.

        Closed with the kernel (its ``close()``, if it has one), newest first.
        """
        found = self._parts.get(key)
        if found is None:
            with self._lock:
                found = self._parts.get(key)
                if found is None:
                    found = self._parts[key] = (make or key)()
        return found

    def start_engine(self, make: Callable[[], EngineLoop]) -> EngineLoop:
        """The engine loop, made by ``make()`` if none runs yet (see ``loop.engine()``)."""
        with self._lock:
            if self.engine is None:
                self.engine = make()
            return self.engine

    # -------------------------------------------------------------- lifecycle
    def close(self, timeout: float = SHUTDOWN_TIMEOUT) -> None:
        """Shut every backend down, then close every part; safe to call more than once."""
        with self._lock:
            backends, self.backends = list(self.backends.values()), {}
            parts, self._parts = list(self._parts.values()), {}
            self.closed = True
        if backends:
            self._shutdown(backends, timeout)
        for part in reversed(parts):
            close = getattr(part, "close", None)
            if close is not None:
                try:
                    close()
                except Exception as error:  # noqa: BLE001 - the others must close too
                    log.warning("flyte_nb: closing %r failed: %r", part, error)

    def _shutdown(self, backends: list[Backend], timeout: float) -> None:
        async def all_of() -> None:
            results = await asyncio.gather(*(b.shutdown() for b in backends), return_exceptions=True)
            for backend, result in zip(backends, results):
                if isinstance(result, BaseException):
                    log.warning("flyte_nb: backend %s did not shut down cleanly: %r", backend.name, result)

        engine = self.engine
        try:
            if engine is not None and engine.thread.is_alive() and not engine.on_thread():
                engine.submit(all_of()).result(timeout)
            else:
                asyncio.run(asyncio.wait_for(all_of(), timeout))
        except Exception as error:  # noqa: BLE001 - exit goes on
            log.warning("flyte_nb: shutting backends down failed: %r", error)

    def reset(self) -> None:
        """Close, then start afresh with no runs, names, listeners or backends (for tests).

        The engine loop keeps running: tasks of other runs may still be on it.
        """
        self.close()
        with self._lock:
            self.listeners.clear()
            self.default_backend = "inline"
            self.names = RunNames()
            self.runs.clear()
            self.echo = True
            self.project_names = dict.fromkeys(_PROJECT_NAMES)
            self.closed = False


class Recent(OrderedDict[K, V]):
    """A kernel part that keeps what the newest ``LIMIT`` keys (runs, actions, attempts) made.

    Subclass it once per kind of thing kept (the subclass is the part's key):
    ``kernel().part(KeptTraces).get_or_make(key, make)``.
    """

    LIMIT: ClassVar[int] = 1024

    def get_or_make(self, key: K, make: Callable[[], V]) -> V:
        found = self.get(key)
        if found is None:
            found = self[key] = make()
            while len(self) > self.LIMIT:
                self.popitem(last=False)
        return found


_KERNEL = Kernel()
atexit.register(_KERNEL.close)


def kernel() -> Kernel:
    """This process's Kernel."""
    return _KERNEL
