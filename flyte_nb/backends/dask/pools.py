"""Cluster-wide limits: a slot pool whose leases the Dask scheduler holds.

``ClusterSlotPool`` is a slot pool whose leases are held on the scheduler (the semaphore extension
behind ``distributed.Semaphore``, same names, same lease timeouts), so kernels sharing a cluster
never exceed a limit together and its ``statistics()`` report cluster-wide holders. The
concurrency of a dask environment is cluster-wide (semaphore ``flyte_nb/env/<name>``); tag
throttles become cluster-wide with ``with_runcontext(throttle={...}, cluster_wide=True)``
(semaphore ``flyte_nb/tag/<tag>``).
"""

from __future__ import annotations

import asyncio
import collections
import uuid
from typing import TYPE_CHECKING, Any

import dask

from ...engine.slots import PoolStatistics, SlotPool
from ...errors import ConfigurationError

if TYPE_CHECKING:
    from . import _Connection
    from .backend import DaskBackend


_KEEP = 0.05  # seconds a lease given back stays ours for our next action before it goes back to the scheduler


def _lease_timeout() -> float | None:
    value = dask.config.get("distributed.scheduler.locks.lease-timeout")
    return None if value == "inf" else dask.utils.parse_timedelta(value, "s")


class ClusterSlotPool(SlotPool):
    """A slot pool whose leases the Dask scheduler grants: one limit for every kernel on the cluster.

    Backed by the scheduler's semaphore extension (what ``distributed.Semaphore`` uses: a
    ``distributed.Semaphore(name=pool.semaphore)`` sees the same leases). Leases are refreshed by
    the backend and expire on the scheduler if this kernel dies. ``statistics()`` reports the
    cluster-wide holders: adjusted at once for our own changes, and refreshed every half second
    from the scheduler, but only from a poll during which we changed nothing (a count fetched while
    our own release was in flight would bring a holder back that is already gone).

    A lease one of our actions gives back is kept ``_KEEP`` s for our next action to ask (a map's
    next child asks right after) while the limit has room: no scheduler round trip between a
    child and the next, and the cluster-wide count is unchanged (the lease is ours until
    released). A full limit's leases go back at once (another kernel may wait). ``reused`` counts
    the leases taken from those kept.
    """

    __slots__ = ("backend", "semaphore", "leases", "cluster_held", "waiting", "changes", "releasing", "_registered",
                 "kept", "reused")

    def __init__(self, backend: DaskBackend, capacity: int, name: str) -> None:
        super().__init__(capacity, f"cluster:{name}")
        self.backend = backend
        self.semaphore = "flyte_nb/" + name.replace(":", "/", 1)
        self.leases: collections.deque[str] = collections.deque()
        self.cluster_held = 0
        self.waiting = 0
        self.changes = 0  # our acquisitions and releases so far: a poll that saw it move is stale
        self.releasing: collections.deque[str] = collections.deque()  # leases whose release is on its way
        self._registered: Any = None
        self.kept: dict[str, asyncio.TimerHandle] = {}  # leases released here, kept a moment for our next action
        self.reused = 0  # leases that went from one of our actions to the next without the scheduler

    def try_acquire(self) -> bool:
        """Take a lease one of our actions just gave back (no round trip), if one is kept."""
        if not self.kept:
            return False  # any other lease is the scheduler's decision
        lease, timer = self.kept.popitem()
        timer.cancel()
        self._took(lease, reused=True)
        return True

    async def acquire(self) -> bool:
        if self.try_acquire():
            return True
        connection = await self.backend.connection()
        lease = uuid.uuid4().hex
        granted = connection.on_client_loop(self._acquire(connection, lease))
        self.waiting += 1
        try:
            await asyncio.shield(asyncio.wrap_future(granted))
        except asyncio.CancelledError:
            # the request goes on at the scheduler: give the lease back if it is granted after all
            granted.add_done_callback(lambda f: f.cancelled() or f.exception() or self._send_release(connection, lease))
            raise
        finally:
            self.waiting -= 1
        self._took(lease)
        return True

    def _took(self, lease: str, reused: bool = False) -> None:
        self.leases.append(lease)
        self.held += 1
        self.changes += 1
        if reused:  # its release took it off the count
            self.reused += 1
            self.cluster_held += 1
        self.cluster_held = max(self.cluster_held, self.held)

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

    def _send_release(self, connection: _Connection, lease: str) -> None:
        """Give ``lease`` back; until the scheduler has it, polls are stale (deque ops are atomic across threads)."""
        self.releasing.append(lease)
        connection.on_client_loop(self._release(connection, lease))

    async def _release(self, connection: _Connection, lease: str) -> None:
        try:
            await connection.client.scheduler.semaphore_release(name=self.semaphore, lease_id=lease)
        except Exception:  # noqa: BLE001 - the lease times out on the scheduler anyway
            pass
        finally:
            self.releasing.remove(lease)
            self.changes += 1

    def release(self) -> None:
        if not self.leases:
            raise RuntimeError(f"slot pool `{self.name}` released more often than acquired")
        lease = self.leases.popleft()
        full = self.cluster_held + len(self.kept) >= self.capacity
        self.held -= 1
        self.changes += 1
        self.cluster_held = max(0, self.cluster_held - 1)
        self._give_back(lease, full)

    def _give_back(self, lease: str, full: bool) -> None:
        """A lease we no longer use: kept ``_KEEP`` s for our next action, unless the limit was ``full``, then released.

        A map's next child asks for its slot right after the last one gave it back: keeping the
        lease a moment saves that child a scheduler round trip (the cluster-wide count is the same:
        the lease is ours until it is released). When every lease was held, another kernel may be
        waiting for one: it goes back to the scheduler at once, which decides between us and them.
        """
        connection = self.backend.connected
        if connection is None:
            return
        if full or self.waiting:
            self._send_release(connection, lease)
            return
        self.changes += 1  # a poll in flight counts it held: stale
        self.kept[lease] = asyncio.get_running_loop().call_later(_KEEP, self._drop_kept, connection, lease)

    def _drop_kept(self, connection: _Connection, lease: str) -> None:
        if self.kept.pop(lease, None) is not None:
            self._send_release(connection, lease)

    async def poll(self, connection: _Connection, refresh: bool) -> None:
        """On the client loop: refresh our leases and the cluster-wide count."""
        if self._registered is not connection:
            return
        scheduler = connection.client.scheduler
        leases = list(self.leases)
        if refresh and leases:
            await scheduler.semaphore_refresh_leases(name=self.semaphore, lease_ids=leases)
        changes, releasing = self.changes, bool(self.releasing)
        value = await scheduler.semaphore_value(name=self.semaphore)
        if not releasing and not self.releasing and changes == self.changes:
            self.cluster_held = max(0, value - len(self.kept))  # kept leases are no action's

    def drop_all(self, connection: _Connection) -> None:
        """The connection goes away: release what we hold."""
        for lease, timer in tuple(self.kept.items()):
            timer.cancel()
            self._drop_kept(connection, lease)
        while self.leases:
            lease = self.leases.popleft()
            try:
                self._send_release(connection, lease)
            except Exception:  # noqa: BLE001
                pass
        self.held = 0

    def statistics(self) -> PoolStatistics:
        return PoolStatistics(self.name, self.capacity, self.cluster_held, self.waiting)

    def __repr__(self) -> str:
        return f"<ClusterSlotPool {self.name!r} {self.held} held here, {self.cluster_held}/{self.capacity} on the cluster>"
