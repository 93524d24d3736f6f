"""``flyte_nb.Semaphore``: a drop-in for ``asyncio.Semaphore`` that the UI can see.

``scope="machine"`` shares the slots with every process on this machine (leases in the flyte_nb
home, freed when a holder dies), the way Prefect's global concurrency limits do without a server;
``scope="cluster"`` with every client of the dask backend's scheduler (its leases).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from typing import Any

from ..engine.context import current_action
from ..engine.loop import engine
from ..engine.slots import PoolStatistics, SlotPool
from ..errors import ConfigurationError

_unnamed = itertools.count(1)
_SCOPES = ("kernel", "machine", "cluster")
_MACHINE_ORDER = 1 << 59  # after this process's own pools, before rates (1 << 60)


class Semaphore(SlotPool):
    """``async with flyte_nb.Semaphore(3, name="api"):`` — a slot pool shown with the run's limits."""

    __slots__ = ()

    def __new__(cls, value: int = 1, *, name: str | None = None, scope: str = "kernel") -> Semaphore:
        if scope not in _SCOPES:
            raise ConfigurationError(f"Semaphore scope must be one of {', '.join(_SCOPES)}, got {scope!r}")
        if cls is Semaphore and scope != "kernel":
            cls = MachineSemaphore if scope == "machine" else ClusterSemaphore
        return super().__new__(cls)

    def __init__(self, value: int = 1, *, name: str | None = None, scope: str = "kernel") -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(f"Semaphore value must be a whole number >= 1, got {value!r}")
        super().__init__(value, f"semaphore:{name or next(_unnamed)}")

    async def acquire(self) -> bool:
        action = current_action.get()
        if action is not None:
            action.run.pools.setdefault(self.name, self)
        return await super().acquire()

    def locked(self) -> bool:
        return self.capacity is not None and self.held >= self.capacity

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: Any) -> None:
        self.release()


class MachineSemaphore(Semaphore):
    """``Semaphore(4, name="db", scope="machine")``: at most 4 holders among all processes here."""

    __slots__ = ("machine",)

    def __init__(self, value: int = 1, *, name: str | None = None, scope: str = "machine") -> None:
        if not isinstance(name, str) or not name.strip():
            raise ConfigurationError("a machine-scope Semaphore needs a name (processes share it by name)")
        super().__init__(value, name=name)
        self.name = f"semaphore:{name}@machine"
        # one order for a name in every process, so actions needing several machine-wide pools
        # take them in the same order everywhere (no deadlock between processes)
        self.order = _MACHINE_ORDER + int.from_bytes(hashlib.sha1(name.encode()).digest()[:6], "big")
        from ..data.machine_limits import MachineSlots

        self.machine = MachineSlots(name, value)

    def try_acquire(self) -> bool:
        if self.machine.try_acquire():
            self.held += 1
            return True
        return False

    async def acquire(self) -> bool:
        action = current_action.get()
        if action is not None:
            action.run.pools.setdefault(self.name, self)
        await self.machine.acquire()
        self.held += 1
        return True

    def release(self) -> None:
        self.machine.release()
        self.held -= 1

    def locked(self) -> bool:
        return self.machine.holders() >= self.machine.capacity

    def statistics(self) -> PoolStatistics:
        return self.machine.statistics(self.name)


class ClusterSemaphore(Semaphore):
    """``Semaphore(4, name="db", scope="cluster")``: leases held on the dask backend's scheduler."""

    __slots__ = ("cluster",)

    def __init__(self, value: int = 1, *, name: str | None = None, scope: str = "cluster") -> None:
        if not isinstance(name, str) or not name.strip():
            raise ConfigurationError("a cluster-scope Semaphore needs a name (clients share it by name)")
        super().__init__(value, name=name)
        from ..backends.base import get_backend

        self.cluster = get_backend("dask").cluster_pool(f"semaphore:{name}", value)  # type: ignore[attr-defined]
        self.name = self.cluster.name
        self.order = self.cluster.order

    def try_acquire(self) -> bool:
        return False  # every lease is the scheduler's decision

    async def acquire(self) -> bool:
        action = current_action.get()
        if action is not None:
            action.run.pools.setdefault(self.name, self)
        if engine().on_thread():  # the dask backend's connection lives on the engine loop
            await self.cluster.acquire()
        else:
            await asyncio.wrap_future(engine().submit(self.cluster.acquire()))
        return True

    def release(self) -> None:
        if engine().on_thread():
            self.cluster.release()
        else:
            engine().call_soon(self.cluster.release)

    def locked(self) -> bool:
        return self.cluster.statistics().holders >= self.cluster.capacity

    def statistics(self) -> PoolStatistics:
        return self.cluster.statistics()
