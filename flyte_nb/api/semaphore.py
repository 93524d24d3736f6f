"""``flyte_nb.Semaphore``: a drop-in for ``asyncio.Semaphore`` that the UI can see.

``scope="machine"`` shares the slots with every process on this machine (leases in the flyte_nb
home, freed when a holder dies), the way Prefect's global concurrency limits do without a server;
``scope="cluster"`` with every client of the dask backend's scheduler (its leases).

Inside a task body running in a worker (process, container, Dask), a semaphore made in the kernel
(and shipped with the body, by its kernel token) or any machine- or cluster-scope one is the
kernel's: each acquisition asks the kernel (``Acquire``/``Release`` of the worker protocol), so
every worker draws on one budget. A kernel-scope semaphore made inside the body stays local to
that body, as an ``asyncio.Semaphore`` would.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import uuid
import weakref
from collections import deque
from typing import Any

from ..engine.backend import CLUSTER, get_backend
from ..engine.context import current_action, current_channel
from ..engine.kernel import kernel
from ..engine.loop import engine
from ..engine.slots import PoolStatistics, SlotPool
from ..errors import ConfigurationError

_unnamed = itertools.count(1)
_SCOPES = ("kernel", "machine", "cluster")
_MACHINE_ORDER = 1 << 59  # after this process's own pools, before rates (1 << 60)
_SESSION = uuid.uuid4().hex[:12]
_tokens = itertools.count(1)
_live: weakref.WeakValueDictionary[str, Semaphore] = weakref.WeakValueDictionary()  # made here, by token


class _Served(dict):
    """Kernel side: the budgets served for semaphores that workers shipped and this kernel did not make."""


class Semaphore(SlotPool):
    """``async with flyte_nb.Semaphore(3, name="api"):`` — a slot pool shown with the run's limits."""

    __slots__ = ("token", "scope", "label", "home", "proxy", "tickets")

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
        self.scope = scope
        self.label = name
        self.token = f"{_SESSION}-{next(_tokens)}"
        self.home = current_channel.get()  # made inside a worker's body: that worker's, unless scoped wider
        self.proxy = False
        self.tickets: deque[tuple[Any, tuple[str, int]]] = deque()  # grants the kernel made us (in a worker)
        _live[self.token] = self

    def __reduce__(self) -> tuple[Any, ...]:
        """Shipped by reference: unpickled in the kernel that made it, it is that very semaphore."""
        return (_shipped_semaphore, (self.token, self.capacity, self.label, self.scope))

    def _channel(self) -> Any:
        """Inside a worker, the way to the kernel when the budget is the kernel's."""
        channel = current_channel.get()
        if channel is not None and (self.proxy or self.home is not channel or self.scope != "kernel"):
            return channel
        return None

    async def _acquire_remote(self, channel: Any) -> bool:
        self.tickets.append((channel, await channel.acquire_limit(self, 1)))
        self.held += 1
        return True

    def _release_remote(self) -> None:
        channel, ticket = self.tickets.popleft()
        self.held -= 1
        channel.release_limit(ticket)

    async def acquire(self) -> bool:
        channel = self._channel()
        if channel is not None:
            return await self._acquire_remote(channel)
        action = current_action.get()
        if action is not None:
            action.run.pools.setdefault(self.name, self)
        return await super().acquire()

    def try_acquire(self) -> bool:
        if self.proxy:
            return False  # the kernel decides
        return super().try_acquire()

    def release(self) -> None:
        if self.tickets:
            self._release_remote()
        else:
            super().release()

    # the kernel side of an acquisition made in a worker (``backends.limits.KernelLimit``)
    async def serve_acquire(self, cost: float) -> bool:
        await self._served().acquire()
        return True  # held until the worker releases it or its attempt ends

    def serve_release(self) -> None:
        self._served().release()

    def serve_settle(self, charged: float, actual: float) -> None:
        """Slots are not settled."""

    def _served(self) -> Semaphore:
        if not self.proxy:
            return self
        key = self.token if self.scope == "kernel" else (self.scope, self.label, self.capacity)
        budgets = kernel().part(_Served)
        served = budgets.get(key)
        if served is None:
            served = budgets[key] = Semaphore(self.capacity, name=self.label, scope=self.scope)
        return served

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
        super().__init__(value, name=name, scope="machine")
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
        channel = self._channel()
        if channel is not None:
            return await self._acquire_remote(channel)
        action = current_action.get()
        if action is not None:
            action.run.pools.setdefault(self.name, self)
        await self.machine.acquire()
        self.held += 1
        return True

    def release(self) -> None:
        if self.tickets:
            self._release_remote()
            return
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
        super().__init__(value, name=name, scope="cluster")
        self.cluster = get_backend(CLUSTER).cluster_pool(f"semaphore:{name}", value)
        self.name = self.cluster.name
        self.order = self.cluster.order

    def try_acquire(self) -> bool:
        return False  # every lease is the scheduler's decision

    async def acquire(self) -> bool:
        channel = self._channel()
        if channel is not None:
            return await self._acquire_remote(channel)
        action = current_action.get()
        if action is not None:
            action.run.pools.setdefault(self.name, self)
        if engine().on_thread():  # the dask backend's connection lives on the engine loop
            await self.cluster.acquire()
        else:
            await asyncio.wrap_future(engine().submit(self.cluster.acquire()))
        return True

    def release(self) -> None:
        if self.tickets:
            self._release_remote()
        elif engine().on_thread():
            self.cluster.release()
        else:
            engine().call_soon(self.cluster.release)

    def locked(self) -> bool:
        return self.cluster.statistics().holders >= self.cluster.capacity

    def statistics(self) -> PoolStatistics:
        return self.cluster.statistics()


def _shipped_semaphore(token: str, capacity: int, label: str | None, scope: str) -> Semaphore:
    """A semaphore unpickled: the one made here under ``token``, else a stand-in that reaches the
    kernel's (in a worker) or becomes the budget the kernel serves for it (in the kernel)."""
    live = _live.get(token)
    if live is not None:
        return live
    stand_in = Semaphore.__new__(Semaphore)  # a plain one: a worker must not open the home or the cluster
    Semaphore.__init__(stand_in, capacity, name=label)
    _live.pop(stand_in.token, None)
    stand_in.scope, stand_in.token, stand_in.proxy, stand_in.home = scope, token, True, None
    if label is not None and scope != "kernel":
        stand_in.name = f"semaphore:{label}@{scope}"
    _live[token] = stand_in
    return stand_in
