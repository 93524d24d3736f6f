"""The Dask backend: actions run on a Dask distributed cluster, code shipped by value.

Connect with ``flyte_nb.init(backend="dask", endpoint="tcp://host:8786")``, with an existing
``distributed.Client`` or a cluster object (``LocalCluster``, ``KubeCluster``, ``GatewayCluster``,
``SLURMCluster`` …: anything with a ``scheduler_address``) as ``init(cluster=...)``, or per
environment with ``TaskEnvironment(..., backend="dask")`` (the connection is the kernel's).
Without either, ``DASK_SCHEDULER_ADDRESS`` (dask config ``scheduler-address``) is used.

**Why a synchronous client, bridged.** The engine loop drives every task through greenlets and
must stay responsive; an ``asynchronous=True`` client would put distributed's own comm, batching
and (de)serialisation work on it. A regular client keeps all of that on its own IO thread; the
calls we make from the engine loop (``Client.map``) only enqueue messages. Completion travels
back in batches: a done-callback collects finished futures, one gather per batch fetches their
results on the client's loop, and one ``call_soon_threadsafe`` hands the batch to the engine
loop. Submissions are batched the same way: actions that start in the same engine-loop turn go
to the scheduler as one ``Client.map`` (one graph update), which is what keeps per-action
overhead near raw ``client.map``.

**Actions on the cluster.** Each attempt is a Dask task whose key names the task, run, action
and attempt (``env.task-<run>-a12-1-<session>``: readable on the dashboard, unique per kernel),
``pure=False``, with ``Resources`` mapped onto Dask worker resources (``CPU``, ``MEMORY``,
``GPU``) for those names some worker declares. What the body prints is captured on the worker,
streamed back as it is printed (worker events on a topic of this client) and returned with the
result, so ``action.logs`` is complete when the action ends. Errors keep their type with the
remote traceback attached.

**Stopping.** A timeout or an abort cancels the Dask future and interrupts the thread running
the body on its worker (an asynchronous exception, raised at the body's next Python
instruction: a long C call such as one ``time.sleep`` finishes first).

**Dead workers.** When the scheduler removes a worker, the actions it was running fail their
attempt with ``WorkerDiedError`` (retries apply, with a fresh key) and their futures are
cancelled, so the scheduler's own re-run of the old key yields no second result.

**Cluster-wide limits.** ``ClusterSlotPool`` is a slot pool whose leases are held on the
scheduler (the semaphore extension behind ``distributed.Semaphore``, same names, same lease
timeouts), so kernels sharing a cluster never exceed a limit together and its ``statistics()``
report cluster-wide holders. The concurrency of a dask environment is cluster-wide (semaphore
``flyte_nb/env/<name>``); tag throttles become cluster-wide with
``with_runcontext(throttle={...}, cluster_wide=True)`` (semaphore ``flyte_nb/tag/<tag>``).
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import ctypes
import inspect
import io
import itertools
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import dask
import distributed

from ..data.serialization import FORMAT, loads, ship_error, ship_function, ship_inputs, ship_output
from ..engine.output import record
from ..engine.slots import PoolStatistics, SlotPool
from ..errors import ConfigurationError, FlyteNbError, SerializationError, WorkerDiedError, add_note, user_traceback
from .base import Backend

if TYPE_CHECKING:
    from ..engine.action import Action
    from ..engine.spec import TaskSpec


class SchedulerUnreachableError(FlyteNbError, ConnectionError):
    """The Dask scheduler could not be reached (address and timeout in the message)."""


class VersionMismatchError(FlyteNbError):
    """The Dask workers run other versions of the packages that carry actions (listed)."""


_DEFAULT_TIMEOUT = 10.0
_BUSY = 0.05  # completions closer together than this are a stream…
_COALESCE = 0.02  # …and are gathered in batches at most this much later
_CHECKED_PACKAGES = ("cloudpickle", "dask", "distributed", "msgpack", "flyte_nb")

_settings: dict[str, Any] = {"endpoint": None, "cluster": None, "timeout": None}


def configure(endpoint: str | None = None, cluster: Any = None, timeout: float | None = None) -> None:
    """Where the dask backend connects (``flyte_nb.init(backend="dask", endpoint=..., cluster=...)``).

    ``cluster`` is a ``distributed.Client`` or a cluster object; ``endpoint`` a scheduler address.
    A new setting drops the current connection (the next action connects again).
    """
    if endpoint is not None and (not isinstance(endpoint, str) or not endpoint.strip()):
        raise ConfigurationError(f"endpoint must be a Dask scheduler address like 'tcp://host:8786', got {endpoint!r}")
    if cluster is not None and not (isinstance(cluster, (str, distributed.Client)) or hasattr(cluster, "scheduler_address")):
        raise ConfigurationError("cluster must be a distributed.Client, a Dask cluster object (LocalCluster, KubeCluster, "
                                 f"GatewayCluster, SLURMCluster …) or a scheduler address, got {cluster!r}")
    if isinstance(cluster, distributed.Client) and cluster.asynchronous:
        raise ConfigurationError("flyte_nb needs a synchronous distributed.Client (asynchronous=False)")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ConfigurationError(f"timeout must be a positive number of seconds, got {timeout!r}")
    _settings.update(endpoint=endpoint, cluster=cluster, timeout=timeout)
    from .base import _loaded

    backend = _loaded.get("dask")
    if isinstance(backend, DaskBackend):
        backend.disconnect()


# ======================================================================= kernel side
class _Connection:
    """One client and what hangs off it (topics, lease refresher)."""

    def __init__(self, client: distributed.Client, own: bool, address: str) -> None:
        self.client = client
        self.own = own
        self.address = address
        self.session = uuid.uuid4().hex[:8]
        self.topic = f"flyte_nb-output-{self.session}"
        self.io_loop: asyncio.AbstractEventLoop = client.loop.asyncio_loop

    def on_client_loop(self, coro: Any) -> Any:
        """Run ``coro`` on the client's IO loop; a ``concurrent.futures.Future``."""
        return asyncio.run_coroutine_threadsafe(coro, self.io_loop)


class DaskBackend(Backend):
    name = "dask"

    def __init__(self) -> None:
        self._connection: _Connection | None = None
        self._connecting: asyncio.Future[_Connection] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._functions: dict[int, tuple[str, bytes]] = {}
        self._waiters: dict[str, list[Any]] = {}  # key → [asyncio future, action, chunks recorded]
        self._futures: dict[str, distributed.Future] = {}
        self._queued: list[tuple[str, str, bytes, bytes, str, tuple]] = []
        self._done: list[distributed.Future] = []
        self._done_lock = threading.Lock()
        self._collecting = False
        self._env_pools: dict[str, ClusterSlotPool] = {}
        self._cluster_pools: dict[str, ClusterSlotPool] = {}
        self._refresher: Any = None
        self._last_collect = 0.0

    # ------------------------------------------------------------- connection
    @property
    def client(self) -> distributed.Client | None:
        return self._connection.client if self._connection is not None else None

    @property
    def dashboard_link(self) -> str | None:
        """The Dask dashboard of the connected cluster (for the widget header), if any."""
        connection = self._connection
        if connection is None:
            return None
        try:
            return connection.client.dashboard_link
        except Exception:  # noqa: BLE001 - no dashboard on this scheduler
            return None

    async def connection(self) -> _Connection:
        if self._connection is not None:
            return self._connection
        loop = asyncio.get_running_loop()
        if self._connecting is None or self._connecting.done() and self._connecting.exception() is not None:
            self._loop = loop
            self._connecting = asyncio.ensure_future(loop.run_in_executor(None, _connect))
        connection = await asyncio.shield(self._connecting)
        if self._connection is None:
            self._connection = connection
            self._start(connection)
        return self._connection

    def _start(self, connection: _Connection) -> None:
        client = connection.client
        client.subscribe_topic(connection.topic, self._on_output)
        client.subscribe_topic("all", self._on_cluster_event)
        self._refresher = connection.on_client_loop(self._refresh_forever(connection))

    def disconnect(self) -> None:
        """Forget the connection (closing the client if we made it)."""
        connection, self._connection, self._connecting = self._connection, None, None
        if connection is None:
            return
        if self._refresher is not None:
            self._refresher.cancel()
        for pool in (*self._env_pools.values(), *self._cluster_pools.values()):
            pool.drop_all(connection)
        self._env_pools.clear()
        self._cluster_pools.clear()
        try:
            connection.client.unsubscribe_topic(connection.topic)
            connection.client.unsubscribe_topic("all")
        except Exception:  # noqa: BLE001
            pass
        if connection.own:
            connection.client.close(timeout=5)

    async def shutdown(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.disconnect)

    # ------------------------------------------------------------------ pools
    def pools(self, spec: TaskSpec) -> tuple[SlotPool, ...]:
        environment = spec.extras.get("environment")
        concurrency = getattr(environment, "concurrency", None)
        if not concurrency:
            return ()
        pool = self._env_pools.get(spec.env_name)
        if pool is None or pool.capacity != concurrency:
            pool = self._env_pools[spec.env_name] = ClusterSlotPool(self, concurrency, f"env:{spec.env_name}")
        return (pool,)

    def cluster_pool(self, name: str, capacity: int) -> ClusterSlotPool:
        """The cluster-wide pool ``name`` (``tag:db``…) of ``capacity`` leases, shared by every kernel."""
        pool = self._cluster_pools.get(name)
        if pool is None or pool.capacity != capacity:
            pool = self._cluster_pools[name] = ClusterSlotPool(self, capacity, name)
        return pool

    async def _refresh_forever(self, connection: _Connection) -> None:
        """On the client loop: keep our leases alive and the cluster-wide holder counts fresh."""
        timeout = _lease_timeout()
        every = min(0.5, timeout / 5) if timeout else 0.5
        last_refresh = time.monotonic()
        while True:
            await asyncio.sleep(every)
            pools = [*self._env_pools.values(), *self._cluster_pools.values()]
            refresh = timeout is not None and time.monotonic() - last_refresh > timeout / 5
            for pool in pools:
                try:
                    await pool.poll(connection, refresh)
                except Exception:  # noqa: BLE001 - a flaky network: try again next round
                    pass
            if refresh:
                last_refresh = time.monotonic()

    # --------------------------------------------------------------- execution
    async def execute(self, action: Action, args: tuple, kwargs: dict) -> Any:
        spec = action.spec
        connection = await self.connection()
        shipped = self._functions.get(id(spec))
        if shipped is None:
            shipped = self._functions[id(spec)] = ship_function(spec.func, spec.name)
        inputs = ship_inputs(args, kwargs, spec.name)
        key = f"{spec.name}-{action.run.name}-{action.name}-{action.attempts}-{connection.session}"
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._waiters[key] = [waiter, action, 0]
        if not self._queued:
            loop.call_soon(self._submit, connection)
        self._queued.append((key, shipped[0], shipped[1], inputs, spec.name, self._resources(connection, spec)))
        try:
            ok, payload, remote_traceback, chunks, worker = await waiter
        except asyncio.CancelledError:
            self._cancel(connection, [key])
            raise
        except BaseException:
            self._cancel(connection, [key])
            raise
        finally:
            entry = self._waiters.pop(key, None)
        for stream, text in chunks[entry[2] if entry else 0:]:
            record(action, stream, text)
        result = loads(payload)
        if ok:
            return result
        if remote_traceback:
            add_note(result, f"remote traceback (dask worker {worker}):\n{remote_traceback.rstrip()}")
        raise result

    def _resources(self, connection: _Connection, spec: TaskSpec) -> tuple:
        resources = getattr(spec.extras.get("environment"), "resources", None)
        if resources is None:
            return ()
        declared: set[str] = set()
        for worker in connection.client.scheduler_info(n_workers=-1).get("workers", {}).values():
            declared.update(worker.get("resources") or {})
        wanted = {"CPU": resources.cpu_limit, "MEMORY": resources.memory_limit}
        gpu = resources.gpu
        if isinstance(gpu, str):
            gpu = int(gpu.rsplit(":", 1)[1]) if ":" in gpu else 1
        wanted["GPU"] = gpu or None
        return tuple(sorted((k, v) for k, v in wanted.items() if v is not None and k in declared))

    def _submit(self, connection: _Connection) -> None:
        """Engine loop: send every action queued this turn, one ``Client.map`` per resource set."""
        queued, self._queued = self._queued, []
        if connection is not self._connection:
            for key, *_ in queued:
                self._fail(key, SchedulerUnreachableError("the dask connection was reset; the attempt did not start"))
            return
        groups: dict[tuple, list[tuple]] = collections.defaultdict(list)
        for item in queued:
            if item[0] in self._waiters:  # not cancelled while queued
                groups[item[5]].append(item)
        client = connection.client
        for resources, items in groups.items():
            keys = [item[0] for item in items]
            try:
                futures = client.map(
                    run_action, [i[1] for i in items], [i[2] for i in items], [i[3] for i in items],
                    [i[4] for i in items], [connection.topic] * len(items),
                    key=keys, pure=False, retries=0, resources=dict(resources) or None,
                )
            except BaseException as error:  # noqa: BLE001 - fail these attempts, not the loop
                for key in keys:
                    self._fail(key, error)
                continue
            for key, future in zip(keys, futures):
                self._futures[key] = future
                future.add_done_callback(self._on_done)

    def _fail(self, key: str, error: BaseException) -> None:
        entry = self._waiters.get(key)
        if entry is not None and not entry[0].done():
            entry[0].set_exception(error)

    def _cancel(self, connection: _Connection, keys: list[str]) -> None:
        """Cancel these attempts' futures and interrupt their bodies on the workers."""
        futures = [f for f in map(self._futures.pop, keys, itertools.repeat(None)) if f is not None]
        if futures and connection is self._connection:
            connection.on_client_loop(_cancel_on_cluster(connection.client, futures, keys))

    # ----------------------------------------------- completion (client loop)
    def _on_done(self, future: distributed.Future) -> None:
        """Distributed's callback thread: batch finished futures, one collection per batch."""
        with self._done_lock:
            self._done.append(future)
            if self._collecting:
                return
            self._collecting = True
        connection = self._connection
        if connection is not None:
            connection.on_client_loop(self._collect(connection))

    async def _collect(self, connection: _Connection) -> None:
        # let callbacks of the same burst join this batch: one gather per batch, not per action;
        # under a stream of completions wait a few ms more (one round trip saved per result)
        now = time.monotonic()
        busy = now - self._last_collect < _BUSY
        self._last_collect = now
        await asyncio.sleep(_COALESCE if busy else 0)
        with self._done_lock:
            batch, self._done, self._collecting = self._done, [], False
        outcomes: list[tuple[str, bool, Any]] = []
        finished = [f for f in batch if f.status == "finished"]
        if finished:
            try:
                values = await connection.client._gather(finished)
                outcomes.extend((f.key, True, v) for f, v in zip(finished, values))
            except Exception:  # noqa: BLE001 - one by one, to tell which failed
                for future in finished:
                    try:
                        outcomes.append((future.key, True, (await connection.client._gather([future]))[0]))
                    except Exception as error:  # noqa: BLE001
                        outcomes.append((future.key, False, error))
        for future in batch:
            if future.status not in ("finished", "error", "cancelled"):
                # its result was lost with a worker before we gathered it: the scheduler computes it
                # again, and we wait for that
                future.add_done_callback(self._on_done)
            elif future.status == "error":
                error = await future._exception()
                if isinstance(error, distributed.KilledWorker):
                    error = WorkerDiedError(f"dask workers died while running {future.key} ({error})")
                outcomes.append((future.key, False, error))
        if outcomes and self._loop is not None:
            self._loop.call_soon_threadsafe(self._deliver, outcomes)

    def _deliver(self, outcomes: list[tuple[str, bool, Any]]) -> None:
        for key, ok, value in outcomes:
            self._futures.pop(key, None)  # the result is here: let the cluster forget it
            entry = self._waiters.get(key)
            if entry is None or entry[0].done():
                continue
            if ok:
                entry[0].set_result(value)
            else:
                entry[0].set_exception(value)

    # ---------------------------------------------------- events (client loop)
    def _on_output(self, event: tuple[float, Any]) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._output, event[1])

    def _output(self, message: Any) -> None:
        key, seq, stream, text = message
        entry = self._waiters.get(key)
        if entry is not None and seq == entry[2]:
            entry[2] += 1
            record(entry[1], stream, text)

    def _on_cluster_event(self, event: tuple[float, Any]) -> None:
        message = event[1]
        if isinstance(message, dict) and message.get("action") == "remove-worker" and self._loop is not None:
            keys = [k for k in message.get("processing-tasks") or () if isinstance(k, str)]
            if keys:
                self._loop.call_soon_threadsafe(self._worker_lost, message.get("worker", "?"), keys,
                                                bool(message.get("expected")))

    def _worker_lost(self, worker: str, keys: list[str], expected: bool) -> None:
        lost = [key for key in keys if key in self._waiters and not self._waiters[key][0].done()]
        for key in lost:
            action = self._waiters[key][1]
            how = "was retired" if expected else "died"
            self._fail(key, WorkerDiedError(f"the dask worker {worker} running task `{action.spec.name}` {how}"))
        if lost and self._connection is not None:
            self._cancel(self._connection, lost)  # the scheduler's re-run of these keys is not wanted


async def _cancel_on_cluster(client: distributed.Client, futures: list[distributed.Future], keys: list[str]) -> None:
    try:
        await client._cancel(futures, reason="flyte_nb", msg="the action was cancelled or timed out", force=True)
        await client._run(_stop_keys, keys, nanny=False, on_error="ignore", wait=True)
    except Exception:  # noqa: BLE001 - best effort: a lost connection cancels everything anyway
        pass


def _lease_timeout() -> float | None:
    value = dask.config.get("distributed.scheduler.locks.lease-timeout")
    return None if value == "inf" else dask.utils.parse_timedelta(value, "s")


def _connect() -> _Connection:
    """In a helper thread: connect to the configured cluster and check the workers' versions."""
    timeout = _settings["timeout"] or float(os.environ.get("FLYTE_NB_DASK_TIMEOUT", _DEFAULT_TIMEOUT))
    target = _settings["cluster"] or _settings["endpoint"] or dask.config.get("scheduler-address", None)
    if target is None:
        raise ConfigurationError("the dask backend has no cluster: flyte_nb.init(backend='dask', "
                                 "endpoint='tcp://host:8786') or init(backend='dask', cluster=client_or_cluster)")
    if isinstance(target, distributed.Client):
        client, own = target, False
        address = client.scheduler.address if client.scheduler is not None else "?"
    else:
        address = target if isinstance(target, str) else getattr(target, "scheduler_address", repr(target))
        try:
            client = distributed.Client(target, timeout=timeout, set_as_default=False)
        except (OSError, asyncio.TimeoutError) as error:
            raise SchedulerUnreachableError(f"cannot reach the Dask scheduler at {address} within {timeout:g}s "
                                            f"({type(error).__name__}: {error})") from None
        own = True
    try:
        check_versions(client)
    except BaseException:
        if own:
            client.close(timeout=5)
        raise
    return _Connection(client, own, address)


def local_versions() -> dict[str, str | None]:
    """Versions of what ships actions (``python`` is major.minor: pickles cross patch releases)."""
    import importlib.metadata

    versions: dict[str, str | None] = {"python": "%d.%d" % sys.version_info[:2], "flyte_nb format": str(FORMAT)}
    for package in _CHECKED_PACKAGES:
        module = sys.modules.get(package)
        version = getattr(module, "__version__", None) if module is not None else None
        if version is None:
            try:
                version = importlib.metadata.version(package.replace("_", "-"))
            except Exception:  # noqa: BLE001 - not installed
                version = None
        versions[package] = version
    return versions


def check_versions(client: distributed.Client) -> None:
    """Raise ``VersionMismatchError`` naming every package whose version differs on a worker."""
    workers = client.run(_worker_versions, on_error="return")
    ours = local_versions()
    problems: list[str] = []
    for address, theirs in sorted(workers.items()):
        if isinstance(theirs, BaseException):
            problems.append(f"{address}: cannot report versions ({type(theirs).__name__}: {theirs}); "
                            "is flyte-nb installed on the workers?")
            continue
        diffs = [f"{name} {ours.get(name)} here, {theirs.get(name)} there"
                 for name in ours if ours.get(name) != theirs.get(name)]
        if diffs:
            problems.append(f"{address}: " + "; ".join(diffs))
    if problems:
        raise VersionMismatchError("the Dask workers do not match this kernel:\n  " + "\n  ".join(problems))


def _worker_versions() -> dict[str, str | None]:
    from flyte_nb.backends.dask import local_versions as versions

    return versions()


class ClusterSlotPool(SlotPool):
    """A slot pool whose leases the Dask scheduler grants: one limit for every kernel on the cluster.

    Backed by the scheduler's semaphore extension (what ``distributed.Semaphore`` uses: a
    ``distributed.Semaphore(name=pool.semaphore)`` sees the same leases). Leases are refreshed by
    the backend and expire on the scheduler if this kernel dies. ``statistics()`` reports the
    cluster-wide holders (refreshed every half second, adjusted at once for our own changes).
    """

    __slots__ = ("backend", "semaphore", "leases", "cluster_held", "waiting", "_registered")

    def __init__(self, backend: DaskBackend, capacity: int, name: str) -> None:
        super().__init__(capacity, f"cluster:{name}")
        self.backend = backend
        self.semaphore = "flyte_nb/" + name.replace(":", "/", 1)
        self.leases: collections.deque[str] = collections.deque()
        self.cluster_held = 0
        self.waiting = 0
        self._registered: Any = None

    def try_acquire(self) -> bool:
        return False  # every lease is the scheduler's decision

    async def acquire(self) -> bool:
        connection = await self.backend.connection()
        lease = uuid.uuid4().hex
        granted = connection.on_client_loop(self._acquire(connection, lease))
        self.waiting += 1
        try:
            await asyncio.shield(asyncio.wrap_future(granted))
        except asyncio.CancelledError:
            # the request goes on at the scheduler: give the lease back if it is granted after all
            granted.add_done_callback(lambda f: f.cancelled() or f.exception() or connection.on_client_loop(
                self._release(connection, lease)))
            raise
        finally:
            self.waiting -= 1
        self.leases.append(lease)
        self.held += 1
        self.cluster_held = max(self.cluster_held, self.held)
        return True

    async def _acquire(self, connection: _Connection, lease: str) -> None:
        scheduler = connection.client.scheduler
        if self._registered is not connection:
            try:
                await scheduler.semaphore_register(name=self.semaphore, max_leases=self.capacity,
                                                   lease_timeout=_lease_timeout())
            except ValueError as error:
                raise ConfigurationError(f"cluster-wide limit `{self.name}` of {self.capacity} conflicts with the "
                                         f"one another kernel set on this cluster ({error})") from None
            self._registered = connection
        while not await scheduler.semaphore_acquire(name=self.semaphore, lease_id=lease, timeout=None):
            pass

    async def _release(self, connection: _Connection, lease: str) -> None:
        try:
            await connection.client.scheduler.semaphore_release(name=self.semaphore, lease_id=lease)
        except Exception:  # noqa: BLE001 - the lease times out on the scheduler anyway
            pass

    def release(self) -> None:
        if not self.leases:
            raise RuntimeError(f"slot pool `{self.name}` released more often than acquired")
        lease = self.leases.popleft()
        self.held -= 1
        self.cluster_held = max(0, self.cluster_held - 1)
        connection = self.backend._connection
        if connection is not None:
            connection.on_client_loop(self._release(connection, lease))

    async def poll(self, connection: _Connection, refresh: bool) -> None:
        """On the client loop: refresh our leases and the cluster-wide count."""
        if self._registered is not connection:
            return
        scheduler = connection.client.scheduler
        leases = list(self.leases)
        if refresh and leases:
            await scheduler.semaphore_refresh_leases(name=self.semaphore, lease_ids=leases)
        self.cluster_held = await scheduler.semaphore_value(name=self.semaphore)

    def drop_all(self, connection: _Connection) -> None:
        """The connection goes away: release what we hold."""
        while self.leases:
            lease = self.leases.popleft()
            try:
                connection.on_client_loop(self._release(connection, lease))
            except Exception:  # noqa: BLE001
                pass
        self.held = 0

    def statistics(self) -> PoolStatistics:
        return PoolStatistics(self.name, self.capacity, self.cluster_held, self.waiting)

    def __repr__(self) -> str:
        return f"<ClusterSlotPool {self.name!r} {self.held} held here, {self.cluster_held}/{self.capacity} on the cluster>"


# ======================================================================= worker side
_sink: contextvars.ContextVar[_Sink | None] = contextvars.ContextVar("flyte_nb_dask_sink", default=None)
_functions: collections.OrderedDict[str, Any] = collections.OrderedDict()
_running: dict[str, int] = {}  # dask key → thread running its body
_running_lock = threading.Lock()
_install_lock = threading.Lock()
_local = threading.local()
_MAX_FUNCTIONS = 256


class ActionStopped(BaseException):
    """Raised inside a body whose action was cancelled or timed out (on the worker)."""


class _Sink:
    """What one action prints on a worker: kept for the result, streamed line by line as events."""

    def __init__(self, key: str, topic: str | None) -> None:
        self.key = key
        self.topic = topic
        self.chunks: list[tuple[str, str]] = []
        self.pending: dict[str, list[str]] = {}
        try:
            self.worker = distributed.get_worker()
        except ValueError:
            self.worker = None

    def write(self, stream: str, text: str) -> None:
        pending = self.pending.setdefault(stream, [])
        pending.append(text)
        if "\n" in text or sum(map(len, pending)) > 8192:
            self.flush(stream)

    def flush(self, stream: str) -> None:
        pending = self.pending.get(stream)
        if pending:
            text = "".join(pending)
            pending.clear()
            self.chunks.append((stream, text))
            if self.topic and self.worker is not None:
                try:
                    self.worker.log_event(self.topic, [self.key, len(self.chunks) - 1, stream, text])
                except Exception:  # noqa: BLE001 - still returned with the result
                    pass

    def close(self) -> list[tuple[str, str]]:
        for stream in list(self.pending):
            self.flush(stream)
        return self.chunks


class _Router(io.TextIOBase):
    """``sys.stdout``/``sys.stderr`` of a worker: writes made inside an action go to its sink."""

    def __init__(self, name: str, wrapped: Any) -> None:
        self.name = name
        self.wrapped = wrapped

    def write(self, text: str) -> int:
        sink = _sink.get()
        if sink is None:
            return self.wrapped.write(text) if self.wrapped is not None else len(text)
        if text:
            sink.write(self.name, text)
        return len(text)

    def flush(self) -> None:
        if _sink.get() is None and self.wrapped is not None:
            self.wrapped.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False


def _install() -> None:
    with _install_lock:
        for name in ("stdout", "stderr"):
            if not isinstance(getattr(sys, name), _Router):
                setattr(sys, name, _Router(name, getattr(sys, name)))


def _load_function(key: str, data: bytes) -> Any:
    func = _functions.get(key)
    if func is None:
        func = _functions[key] = loads(data)
        if len(_functions) > _MAX_FUNCTIONS:
            _functions.popitem(last=False)
    return func


def run_action(function_key: str, function: bytes, inputs: bytes, task: str,
               topic: str | None) -> tuple[bool, bytes, str, list[tuple[str, str]], str]:
    """The Dask task of one attempt: ``(ok, result or error bytes, traceback, output chunks, worker)``."""
    _install()
    try:
        worker = distributed.get_worker()
        where, key = worker.address, worker.get_current_task()
    except ValueError:
        where, key = "local", None
    sink = _Sink(str(key), topic)
    token = _sink.set(sink)
    if key is not None:
        with _running_lock:
            _running[key] = threading.get_ident()
    try:
        try:
            func = _load_function(function_key, function)
            args, kwargs = loads(inputs)
        except Exception as error:  # noqa: BLE001 - named, with the worker
            raise SerializationError(f"task `{task}` cannot be loaded on dask worker {where}: "
                                     f"{type(error).__name__}: {error} (install the module it needs on the workers, "
                                     "or define the code in the notebook so it ships by value)") from None
        result = func(*args, **kwargs)
        if inspect.isawaitable(result):
            loop = getattr(_local, "loop", None)
            if loop is None:
                loop = _local.loop = asyncio.new_event_loop()
            result = loop.run_until_complete(result)
        outcome = (True, ship_output(result, task), "")
    except BaseException as error:  # noqa: BLE001 - every failure goes back to the kernel
        outcome = (False, ship_error(error), user_traceback(error))
    finally:
        try:
            with _running_lock:
                _running.pop(key, None)
        except ActionStopped:  # a stop that arrived as the body ended
            pass
        _sink.reset(token)
    return (*outcome, sink.close(), where)


def _stop_keys(keys: Iterable[str]) -> int:
    """On each worker (``client.run``): interrupt the threads running these keys' bodies."""
    stopped = 0
    with _running_lock:
        for key in keys:
            ident = _running.pop(key, None)
            if ident is not None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(ActionStopped))
                stopped += 1
    return stopped


