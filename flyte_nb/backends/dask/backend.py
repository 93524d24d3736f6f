"""``DaskBackend``: actions as Dask tasks, submitted and collected in batches.

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
``GPU``) for those names some worker declares. What the body prints comes back as it is printed
(see ``worker``), so ``action.logs`` is complete when the action ends. Errors keep their type
with the remote traceback attached.

**Dead workers.** When the scheduler removes a worker, the actions it was running fail their
attempt with ``WorkerDiedError`` (retries apply, with a fresh key) and their futures are
cancelled, so the scheduler's own re-run of the old key yields no second result.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

import distributed

from ...data.serialization import ship_function, ship_inputs
from ...engine.attempt_state import info_for
from ...worker.protocol import Outcome, unwrap
from ...engine.output import record
from ...engine.slots import SlotPool
from ...errors import WorkerDiedError
from ...engine.backend import Backend
from . import SchedulerUnreachableError, _connect, _Connection
from .child_channel import DaskChildren
from .pools import ClusterSlotPool, _lease_timeout
from .on_worker import _stop_keys, run_action

if TYPE_CHECKING:
    from ...engine.action import Action
    from ...engine.spec import TaskSpec

_BUSY = 0.05  # completions closer together than this are a stream…
_COALESCE = 0.02  # …and are gathered in batches at most this much later


class DaskBackend(Backend):
    name = "dask"

    def __init__(self) -> None:
        self._connection: _Connection | None = None
        self._connecting: asyncio.Future[_Connection] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._functions: weakref.WeakKeyDictionary[TaskSpec, tuple[str, bytes]] = weakref.WeakKeyDictionary()
        self._children = DaskChildren()
        self._waiters: dict[str, list[Any]] = {}  # key → [asyncio future, action, chunks recorded]
        self._futures: dict[str, distributed.Future] = {}
        self._queued: list[tuple[str, str, bytes, bytes, str, tuple, Any]] = []
        self._done: list[distributed.Future] = []
        self._done_lock = threading.Lock()
        self._collecting = False
        self._env_pools: dict[str, ClusterSlotPool] = {}
        self._cluster_pools: dict[str, ClusterSlotPool] = {}
        self._refresher: Any = None
        self._last_collect = 0.0
        self._last_batch = 0  # completions the last collection gathered

    # ------------------------------------------------------------- connection
    @property
    def client(self) -> distributed.Client | None:
        return self._connection.client if self._connection is not None else None

    @property
    def connected(self) -> _Connection | None:
        """The current connection to the scheduler, if one is open (never connects)."""
        return self._connection

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
        client.subscribe_topic(connection.topic + "-calls", self._on_call)
        self._children.connection = connection
        client.subscribe_topic("all", self._on_cluster_event)
        self._refresher = connection.on_client_loop(self._refresh_forever(connection))

    def disconnect(self) -> None:
        """Forget the connection (closing the client if we made it)."""
        connection, self._connection, self._connecting = self._connection, None, None
        self._children.connection = None
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
            connection.client.unsubscribe_topic(connection.topic + "-calls")
            connection.client.unsubscribe_topic("all")
        except Exception:  # noqa: BLE001
            pass
        if connection.own:
            connection.client.close(timeout=5)

    async def shutdown(self) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.disconnect)
        except RuntimeError:  # at interpreter exit executors take no new work
            self.disconnect()

    # ------------------------------------------------------------------ pools
    def pools(self, spec: TaskSpec) -> tuple[SlotPool, ...]:
        concurrency = spec.placement.concurrency if spec.placement is not None else None
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
        shipped = self._functions.get(spec)
        if shipped is None:
            shipped = self._functions[spec] = ship_function(spec.func, spec.name)
        inputs = ship_inputs(args, kwargs, spec.name)
        key = f"{spec.name}-{action.run.name}-{action.name}-{action.attempts}-{connection.session}"
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._waiters[key] = [waiter, action, 0]
        self._children.begin(key, action)
        if not self._queued:
            loop.call_soon(self._submit, connection)
        self._queued.append((key, shipped[0], shipped[1], inputs, spec.name, self._resources(connection, spec),
                             info_for(action, remote=True)))
        try:
            ok, payload, remote_traceback, chunks, worker, notes = await waiter
            for note in notes:
                self._children.note(note)
        except asyncio.CancelledError:
            self._cancel(connection, [key])
            raise
        except BaseException:
            self._cancel(connection, [key])
            raise
        finally:
            entry = self._waiters.pop(key, None)
            self._children.end(key)  # children it still waits for are cancelled
        for stream, text in chunks[entry[2] if entry else 0:]:
            record(action, stream, text)
        return unwrap(Outcome(ok, payload, remote_traceback), f"dask worker {worker}")

    def _resources(self, connection: _Connection, spec: TaskSpec) -> tuple:
        placement = spec.placement
        if placement is None or (placement.cpu is None and placement.memory is None and placement.gpu is None):
            return ()
        declared: set[str] = set()
        for worker in connection.client.scheduler_info(n_workers=-1).get("workers", {}).values():
            declared.update(worker.get("resources") or {})
        wanted = {"CPU": placement.cpu, "MEMORY": placement.memory}
        gpu = placement.gpu
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
                    [i[4] for i in items], [connection.topic] * len(items), [i[6] for i in items],
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
        # under a stream of completions (the last batch had several) wait a few ms more (one round
        # trip saved per result); a few children ending together (a map's wave) are not delayed
        now = time.monotonic()
        busy = now - self._last_collect < _BUSY and self._last_batch > 1
        self._last_collect = now
        await asyncio.sleep(_COALESCE if busy else 0)
        with self._done_lock:
            batch, self._done, self._collecting = self._done, [], False
        self._last_batch = len(batch)
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

    def _on_call(self, event: tuple[float, Any]) -> None:
        if self._loop is not None:
            address, data = event[1]
            self._loop.call_soon_threadsafe(self._children.receive, address, data)

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
