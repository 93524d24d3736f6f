"""Policy value types of the Flyte 2 surface, and their normalisation for the engine.

``*_from_request`` turns whatever the user wrote (an int, a ``timedelta``, ``"30s"``, a policy
object) into one engine value, with an error that says what was expected.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal, Union

from ..engine.spec import NO_RETRY, RetryPolicy
from ..errors import ConfigurationError

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


def seconds_from(value: object, what: str) -> float:
    """Seconds from ``30``, ``2.5``, ``"30s"``, ``"5m"``, ``"250ms"`` or a ``timedelta``."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value) if abs(value) < 1e300 else math.inf  # 10**400 would be an OverflowError
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        raise ConfigurationError(f"{what} must be seconds (30), a duration string ('30s', '5m') or a timedelta, got {value!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigurationError(f"{what} must be a finite number of seconds >= 0, got {value!r}")
    return seconds


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff between attempts: ``min(cap, base * factor**(n-1))`` seconds."""

    base: float | str | timedelta = 1.0
    factor: float = 2.0
    cap: float | str | timedelta = 60.0


@dataclass(frozen=True)
class RetryStrategy:
    """Retry a failed attempt ``count`` more times, waiting per ``backoff`` in between."""

    count: int
    backoff: Backoff | float | str | timedelta | None = None


def retry_from_request(retries: int | RetryStrategy | None) -> RetryPolicy:
    if retries is None or retries == 0:
        return NO_RETRY
    if isinstance(retries, bool) or not isinstance(retries, (int, RetryStrategy)):
        raise ConfigurationError(f"retries must be a whole number or RetryStrategy(count=...), got {retries!r}")
    count = retries if isinstance(retries, int) else retries.count
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ConfigurationError(f"retry count must be a whole number >= 0, got {count!r}")
    backoff = retries.backoff if isinstance(retries, RetryStrategy) else None
    if backoff is None:
        return RetryPolicy(count=count, base=0.0, factor=1.0, cap=0.0)
    if not isinstance(backoff, Backoff):
        backoff = Backoff(base=backoff, factor=1.0, cap=backoff)
    if isinstance(backoff.factor, bool) or not isinstance(backoff.factor, (int, float)) or not backoff.factor >= 1:
        raise ConfigurationError(f"backoff factor must be a number >= 1, got {backoff.factor!r}")
    return RetryPolicy(
        count=count,
        base=seconds_from(backoff.base, "backoff base"),
        factor=float(backoff.factor),
        cap=seconds_from(backoff.cap, "backoff cap"),
    )


@dataclass(frozen=True)
class Timeout:
    """Flyte's timeout: ``max_runtime`` per attempt (``max_queued_time`` is accepted, unused)."""

    max_runtime: float | str | timedelta
    max_queued_time: float | str | timedelta | None = None


TimeoutType = Union[int, float, str, timedelta, Timeout, None]


def timeout_from_request(timeout: TimeoutType) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, Timeout):
        timeout = timeout.max_runtime
    seconds = seconds_from(timeout, "timeout")
    return seconds or None  # Flyte: 0 means no timeout


@dataclass(frozen=True)
class Cache:
    """Flyte's cache policy (``behavior``, ``version_override``, ``ignored_inputs``…)."""

    behavior: Literal["auto", "override", "disable", "enabled"] = "auto"
    version_override: str | None = None
    serialize: bool = False
    ignored_inputs: tuple[str, ...] | str = ()
    salt: str = ""
    version: str | None = None  # alias of version_override


CacheRequest = Union[Cache, Literal["auto", "override", "disable", "enabled"], bool, None]


def cache_from_request(cache: CacheRequest) -> Cache | None:
    if cache is None or cache is False or cache == "disable":
        return None
    if cache is True or cache in ("auto", "override", "enabled"):
        return Cache(behavior="auto" if cache is True else cache)  # type: ignore[arg-type]
    if isinstance(cache, Cache):
        if cache.behavior not in ("auto", "override", "disable", "enabled"):
            raise ConfigurationError(f"Cache behavior must be 'auto', 'override' or 'disable', got {cache.behavior!r}")
        return None if cache.behavior == "disable" else cache
    raise ConfigurationError(f"cache must be 'auto', 'override', 'disable', True/False or Cache(...), got {cache!r}")


_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(Ki|Mi|Gi|Ti|K|M|G|T|k)?B?\s*$")
_MEMORY_FACTOR = {None: 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
                  "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


_MAX_MEMORY = 2**63 - 1  # bytes: what a container runtime can hold


def memory_bytes(value: object) -> int:
    """Bytes from ``"512Mi"``, ``"2Gi"``, ``"1G"`` or an int of bytes."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= _MAX_MEMORY:
        return value
    if isinstance(value, str) and (match := _MEMORY.match(value)):
        size = float(match.group(1)) * _MEMORY_FACTOR[match.group(2)]
        if 1 <= size <= _MAX_MEMORY:  # refuses inf ('1e999Gi', an OverflowError at run time) and under a byte
            return int(size)
    raise ConfigurationError(f"memory must look like '512Mi', '2Gi' or '1G' (or bytes as an int), got {value!r}")


_MAX_CPU = 1e6  # cores; beyond this a limit is a typo (and inf overflowed at run time)


@dataclass(frozen=True)
class Resources:
    """What one action may use: ``cpu`` (cores), ``memory`` ('512Mi'), ``gpu``, ``disk``."""

    cpu: int | float | str | tuple | None = None
    memory: str | int | tuple | None = None
    gpu: int | str | None = None
    disk: str | None = None

    def __post_init__(self) -> None:
        for name in ("cpu", "memory"):
            value = getattr(self, name)
            if isinstance(value, tuple) and len(value) != 2:
                raise ConfigurationError(f"{name} must be one value or a (request, limit) pair, got {value!r}")
        for cpu in self.cpu if isinstance(self.cpu, tuple) else (self.cpu,):
            if cpu is None:
                continue
            try:
                ok = 0 < float(cpu) <= _MAX_CPU and not isinstance(cpu, bool)  # inf, nan, 10**400: no
            except (TypeError, ValueError, OverflowError):
                ok = False
            if not ok:
                raise ConfigurationError(f"cpu must be a positive number of cores like 1, 0.5 or '2', got {cpu!r}")
        if isinstance(self.cpu, tuple) and len(self.cpu) == 2 and float(self.cpu[0]) > float(self.cpu[1]):
            raise ConfigurationError(f"cpu=(request, limit) needs request <= limit, got {self.cpu!r}")
        for memory in self.memory if isinstance(self.memory, tuple) else (self.memory,):
            if memory is not None:
                memory_bytes(memory)
        if isinstance(self.memory, tuple) and len(self.memory) == 2 and memory_bytes(self.memory[0]) > memory_bytes(self.memory[1]):
            raise ConfigurationError(f"memory=(request, limit) needs request <= limit, got {self.memory!r}")
        gpu = self.gpu
        if gpu is not None and not (
            (isinstance(gpu, int) and not isinstance(gpu, bool) and gpu >= 0) or (isinstance(gpu, str) and gpu.strip())
        ):
            raise ConfigurationError(f"gpu must be a count >= 0 or a spec like 'A100:1', got {gpu!r}")

    @property
    def cpu_limit(self) -> float | None:
        cpu = self.cpu[-1] if isinstance(self.cpu, tuple) else self.cpu
        return None if cpu is None else float(cpu)

    @property
    def memory_limit(self) -> int | None:
        memory = self.memory[-1] if isinstance(self.memory, tuple) else self.memory
        return None if memory is None else memory_bytes(memory)


@dataclass(frozen=True)
class ReusePolicy:
    """Long-lived workers that take many actions each (used by container backends)."""

    replicas: int | tuple[int, int] = 1
    idle_ttl: float | str | timedelta | None = None
    concurrency: int = 1
    scaledown_ttl: float | str | timedelta | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        bounds = self.replicas if isinstance(self.replicas, tuple) else (self.replicas, self.replicas)
        if (len(bounds) != 2 or not all(isinstance(b, int) and not isinstance(b, bool) and b >= 0 for b in bounds)
                or bounds[0] > bounds[1] or bounds[1] < 1):
            raise ConfigurationError(f"replicas must be a count >= 1 or a (min, max) pair, got {self.replicas!r}")
        if isinstance(self.concurrency, bool) or not isinstance(self.concurrency, int) or self.concurrency < 1:
            raise ConfigurationError(f"ReusePolicy concurrency must be a whole number >= 1, got {self.concurrency!r}")
        if self.idle_ttl is not None:
            seconds_from(self.idle_ttl, "idle_ttl")
        if self.scaledown_ttl is not None:
            seconds_from(self.scaledown_ttl, "scaledown_ttl")
