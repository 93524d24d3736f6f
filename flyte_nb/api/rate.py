"""Rate limits for task bodies: ``flyte_nb.RateLimiter`` and Prefect's ``rate_limit``.

A ``RateLimiter`` is a named budget (``limit`` units per ``per``): ``async with limiter:`` takes one
unit, ``grant = await limiter.acquire(cost)`` takes an estimate that ``grant.settle(actual)``
corrects once the real figure is known (tokens per minute). Limiters of one name are one budget:
in this kernel (``scope="kernel"``, an engine rate pool) or for every process on the machine
(``scope="machine"``, state in the flyte_nb home) or on a Dask cluster (``scope="cluster"``,
state on the scheduler of the dask backend's connection). ``Rate`` values also go wherever a
concurrency limit does (``throttle=``, ``TaskEnvironment(rate=)``, ``map(rate=)``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..engine.context import current_action, current_channel
from ..engine.kernel import kernel
from ..engine.loop import engine
from ..engine.rates import Rate, RatePool
from ..engine.slots import SlotPool
from ..errors import ConfigurationError

_SCOPES = ("kernel", "machine", "cluster")


class _KernelRates(dict):
    """The kernel-scope rate limiters by name: one budget per name in this kernel (a Kernel part)."""


class _ScopedRates(dict):
    """(scope, name) → this process's handle on a machine- or cluster-wide budget (a Kernel part)."""


def _kernel_pools() -> dict[str, RatePool]:
    return kernel().part(_KernelRates)


def _scoped_pools() -> dict[tuple[str, str], Any]:
    return kernel().part(_ScopedRates)


def check_tag_limit(tag: str, limits: Any) -> Any:
    """A tag's throttle: a whole number (at most that many at once, in this run), a ``Semaphore``
    (its slots, shared with whoever else uses it: ``scope="machine"`` for every process here),
    a ``Rate``, or a list of one count and any rates."""
    several = isinstance(limits, (list, tuple))
    whole = 0
    for limit in limits if several else (limits,):
        if isinstance(limit, Rate):
            continue
        whole += 1
        if isinstance(limit, SlotPool):
            continue
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigurationError(f"throttle for tag {tag!r} must be a whole number >= 1, got {limits!r} "
                                     "(or a flyte_nb.Rate, or a list of both)")
    if whole > 1 or (several and not limits):
        raise ConfigurationError(f"throttle for tag {tag!r} takes at most one whole number or Semaphore (and any Rates), "
                                 f"got {limits!r}")
    return tuple(limits) if several else limits


class Grant:
    """Units taken from a limiter; ``settle(actual)`` refunds or charges the difference, once."""

    __slots__ = ("limiter", "cost", "settled", "ticket", "channel")

    def __init__(self, limiter: RateLimiter, cost: float, ticket: tuple[str, int] | None = None,
                 channel: Any = None) -> None:
        self.limiter = limiter
        self.cost = cost
        self.settled: float | None = None
        self.ticket = ticket  # inside a worker: which request the kernel granted, and through which channel
        self.channel = channel

    def settle(self, actual: float) -> None:
        """The call really used ``actual`` units (tokens known only afterwards)."""
        if isinstance(actual, bool) or not isinstance(actual, (int, float)) or actual < 0:
            raise ConfigurationError(f"settle needs the units really used, a number >= 0, got {actual!r}")
        if self.settled is not None:
            raise ConfigurationError(f"this grant of {self.cost} from `{self.limiter.name}` was already settled "
                                     f"at {self.settled}")
        self.settled = actual
        if self.channel is not None:  # settled from any thread of the worker: the kernel's budget
            self.channel.settle_limit(self.ticket, self.limiter, self.cost, actual)
        else:
            self.limiter._settle(self.cost, actual)

    def __repr__(self) -> str:
        return f"<Grant {self.cost} of {self.limiter.name!r}" + (f" settled at {self.settled}>" if self.settled is not None else ">")


class RateLimiter:
    """``RateLimiter("llm", 60, per="1m")``: at most 60 starts a minute, shared by name.

    ``burst`` units may go back to back; beyond it the schedule is smooth. Creating a limiter of
    a name that exists changes that budget's rate (from its next grant on). Inside a task body
    running in a worker (process, container, Dask) a limiter is the kernel's budget of that name
    and scope: each acquisition asks the kernel, as a task call does.
    """

    def __init__(self, name: str, limit: float, per: str | float = "1s", burst: int = 1, *, scope: str = "kernel") -> None:
        if not isinstance(name, str) or not name.strip():
            raise ConfigurationError(f"RateLimiter needs a name (limiters of one name share a budget), got {name!r}")
        if scope not in _SCOPES:
            raise ConfigurationError(f"RateLimiter scope must be one of {', '.join(_SCOPES)}, got {scope!r}")
        self.name = name
        self.scope = scope
        self._rate: Rate | None = Rate(limit, per, burst)
        self._declared = True  # made by user code (not shipped from the kernel): its rate is meant
        self._shipped = False  # unpickled from another process
        self._pool: Any = None if current_channel.get() is not None else self._resolve()

    def _resolve(self) -> Any:
        """This process's pool of the budget (in a worker none: the kernel's is used)."""
        name, rate, scope = self.name, self._rate, self.scope
        if scope == "kernel":
            pool = _kernel_pools().get(name)
            if pool is None:
                if rate is None:
                    raise _unknown(name)
                # setdefault: two threads creating the first one still get one budget
                pool = _kernel_pools().setdefault(name, rate.pool(f"limiter:{name}"))
            if self._declared and pool.rate != rate:
                _on_engine(pool.set_rate, rate)
            return pool
        key = (scope, name)
        pool = _scoped_pools().get(key)
        # a limiter made here is a fresh handle (its rate re-asserted); one shipped from a worker
        # reuses this process's handle while the rate is the same (no transaction per acquisition)
        if pool is None or (self._declared and (not self._shipped or pool.rate != rate)):
            if scope == "machine":
                from ..data.machine_limits import MachineRatePool

                pool = MachineRatePool(name, rate)
            else:
                from ..backends.dask.rates import ClusterRatePool  # imports distributed only when asked for

                pool = ClusterRatePool(name, rate)
            _scoped_pools()[key] = pool
        return pool

    def __reduce__(self) -> tuple[Any, ...]:
        """Shipped by reference (name, scope, rate): the other side finds its budget by name."""
        return (_shipped_limiter, (self.name, self.scope, self.rate, self._pool is None and self._declared))

    @property
    def rate(self) -> Rate:
        return self._pool.rate if self._pool is not None else self._rate

    def set_rate(self, limit: float, per: str | float | None = None, burst: int | None = None) -> None:
        """Change the budget's rate; waiters already queued are served at the new rate from the next grant."""
        old = self.rate
        rate = Rate(limit, old.per if per is None else per, old.burst if burst is None else burst)
        pool = self._in_kernel("set_rate")
        if self.scope == "machine":
            pool.set_rate(rate)
        else:
            _on_engine(pool.set_rate, rate)

    def _in_kernel(self, what: str) -> Any:
        if self._pool is None:
            if current_channel.get() is not None:
                raise ConfigurationError(f"RateLimiter {self.name!r}: {what} works in the kernel, where the budget "
                                         "lives (inside a worker, acquire, settle and rate_limit reach it)")
            self._pool = self._resolve()
        return self._pool

    async def acquire(self, cost: float = 1) -> Grant:
        """Wait (FIFO) until ``cost`` units conform, take them, and return the grant."""
        _check_cost(cost, self.name)
        channel = current_channel.get()
        if channel is not None:  # inside a worker: the kernel's budget
            return Grant(self, cost, await channel.acquire_limit(self, cost), channel)
        pool = self._in_kernel("acquire")
        self._show()
        if self.scope == "machine" or engine().on_thread():
            await pool.acquire(cost)
        else:  # another loop (a thread's): queue on the engine loop, where the kernel's budget lives
            await asyncio.wrap_future(engine().submit(pool.acquire(cost)))
        return Grant(self, cost)

    def acquire_sync(self, cost: float = 1) -> Grant:
        """``acquire`` for sync code (a sync task body); blocks this thread, never the engine loop."""
        channel = current_channel.get()
        if channel is not None:
            _check_cost(cost, self.name)
            return Grant(self, cost, channel.block(channel.acquire_limit(self, cost)), channel)
        if engine().on_thread():
            raise ConfigurationError("acquire_sync would block the engine loop; use `await limiter.acquire()` there")
        if self.scope == "machine":
            return asyncio.run(self.acquire(cost))
        _check_cost(cost, self.name)
        pool = self._in_kernel("acquire")
        self._show()
        engine().submit(pool.acquire(cost)).result()
        return Grant(self, cost)

    def _settle(self, charged: float, actual: float) -> None:
        pool = self._in_kernel("settle")
        if self.scope == "kernel":
            _on_engine(pool.settle, charged, actual)
        else:
            pool.settle(charged, actual)

    def _show(self) -> None:
        action = current_action.get()
        if action is not None:
            action.run.use_pool(self._pool)

    # the kernel side of an acquisition made in a worker (``backends.limits.KernelLimit``)
    async def serve_acquire(self, cost: float) -> bool:
        await self.acquire(cost)
        return False  # spent by starting, nothing to give back

    def serve_release(self) -> None:
        """Rate units are not given back."""

    def serve_settle(self, charged: float, actual: float) -> None:
        self._settle(charged, actual)

    def statistics(self) -> Any:
        return self._in_kernel("statistics").statistics()

    async def __aenter__(self) -> Grant:
        return await self.acquire(1)

    async def __aexit__(self, *exc: Any) -> None:
        return None

    def __enter__(self) -> Grant:
        return self.acquire_sync(1)

    def __exit__(self, *exc: Any) -> None:
        return None

    def __repr__(self) -> str:
        return f"RateLimiter({self.name!r}, {self.rate!r}, scope={self.scope!r})"


def _check_cost(cost: float, name: str) -> None:
    if isinstance(cost, bool) or not isinstance(cost, (int, float)) or cost <= 0:
        raise ConfigurationError(f"acquire cost must be a number > 0 (units of `{name}`), got {cost!r}")


def _shipped_limiter(name: str, scope: str, rate: Rate | None, declared: bool) -> RateLimiter:
    """A limiter unpickled: the budget of its name here; its rate changes that budget only when user
    code made it (in a worker), not when the kernel's own limiter travelled and came back."""
    limiter = object.__new__(RateLimiter)
    limiter.name, limiter.scope, limiter._rate, limiter._declared = name, scope, rate, declared
    limiter._shipped = True
    limiter._pool = None
    return limiter


def _on_engine(fn: Any, *args: Any) -> None:
    """Pool state belongs to the engine thread: change it there."""
    if engine().on_thread():
        fn(*args)
    else:
        engine().call_soon(fn, *args)


def rate_limit(name: str, occupy: float = 1) -> Any:
    """Prefect's ``rate_limit(name, occupy=1)``: take ``occupy`` units of the limiter ``name``.

    In async code ``await rate_limit("llm")``; in sync code ``rate_limit("llm")`` blocks. Inside a
    worker it takes them from the kernel's limiter of that name.
    """
    if current_channel.get() is not None:
        limiter = _shipped_limiter(name, "kernel", None, False)
    else:
        pool = _kernel_pools().get(name)
        if pool is None:
            raise _unknown(name)
        limiter = RateLimiter(name, pool.rate.limit, pool.rate.per, pool.rate.burst)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return limiter.acquire_sync(occupy)
    return limiter.acquire(occupy)


def _unknown(name: str) -> ConfigurationError:
    return ConfigurationError(f"no rate limiter named {name!r} in this kernel; create one first: "
                              f"flyte_nb.RateLimiter({name!r}, limit, per='1m')")
