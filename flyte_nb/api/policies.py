"""Policy value types of the Flyte 2 surface, and their normalisation for the engine.

``*_from_request`` turns whatever the user wrote (an int, a ``timedelta``, ``"30s"``, a policy
object) into one engine value, with an error that says what was expected.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Union

from ..engine.spec import NO_RETRY, RetryPolicy
from ..errors import ConfigurationError
from ..units import memory_bytes

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
    """Flyte's time bounds: ``max_runtime`` per attempt, ``max_queued_time`` waiting for slots per
    attempt, ``deadline`` from queued to done across all attempts; ``None`` or 0 means unbounded."""

    max_runtime: float | str | timedelta | None = None
    max_queued_time: float | str | timedelta | None = None
    deadline: float | str | timedelta | None = None


TimeoutType = Union[int, float, str, timedelta, Timeout, None]


@dataclass(frozen=True)
class TimeBounds:
    """A ``Timeout`` in seconds, each bound ``None`` when unbounded."""

    max_runtime: float | None = None
    max_queued_time: float | None = None
    deadline: float | None = None


def time_bounds_from_request(timeout: TimeoutType) -> TimeBounds:
    """Every bound of ``timeout`` in seconds; a bare number, string or timedelta is ``max_runtime``."""
    if timeout is None:
        return TimeBounds()
    if not isinstance(timeout, Timeout):
        timeout = Timeout(max_runtime=timeout)
    bounds = {}
    for what in ("max_runtime", "max_queued_time", "deadline"):
        value = getattr(timeout, what)
        label = "timeout" if what == "max_runtime" else f"timeout {what}"
        bounds[what] = None if value is None else (seconds_from(value, label) or None)  # Flyte: 0 means no bound
    return TimeBounds(**bounds)


def timeout_from_request(timeout: TimeoutType) -> float | None:
    """The per-attempt bound (``max_runtime``) in seconds, the one the engine enforces per attempt."""
    return time_bounds_from_request(timeout).max_runtime


_CACHE_ALIASES = {"enable": "auto", "enabled": "auto", "on": "auto", "true": "auto", "yes": "auto",
                  "off": "disable", "false": "disable", "no": "disable", "none": "disable"}


@dataclass(frozen=True)
class Cache:
    """Flyte's cache policy. ``version_override`` (alias ``version``) pins the version; otherwise
    ``policies`` compute it (by default the function body, as Flyte's ``FunctionBodyPolicy``).
    ``serialize`` and ``max_age`` are accepted; see the README's compatibility table."""

    behavior: str = "auto"
    version_override: str | None = None
    serialize: bool = False
    ignored_inputs: tuple[str, ...] | str = ()
    salt: str = ""
    policies: Any = None
    max_age: float | timedelta | None = None
    version: str | None = None  # alias of version_override

    def __post_init__(self) -> None:
        behavior = self.behavior
        if isinstance(behavior, str):
            behavior = _CACHE_ALIASES.get(behavior.lower(), behavior.lower())
        if behavior not in ("auto", "override", "disable"):
            raise ConfigurationError(f"Cache behavior must be 'auto', 'override' or 'disable', got {self.behavior!r}")
        object.__setattr__(self, "behavior", behavior)
        if self.max_age is not None:
            seconds_from(self.max_age, "Cache max_age")


CacheRequest = Union[Cache, str, bool, None]


def cache_from_request(cache: CacheRequest) -> Cache | None:
    if cache is None or cache is False:
        return None
    if cache is True:
        cache = "auto"
    if isinstance(cache, str):
        if _CACHE_ALIASES.get(cache.lower(), cache.lower()) not in ("auto", "override", "disable"):
            raise ConfigurationError(f"cache must be 'auto', 'override', 'disable', True/False or Cache(...), got {cache!r}")
        cache = Cache(behavior=cache)
    if isinstance(cache, Cache):
        return None if cache.behavior == "disable" else cache
    raise ConfigurationError(f"cache must be 'auto', 'override', 'disable', True/False or Cache(...), got {cache!r}")


_MAX_CPU = 1e6  # cores; beyond this a limit is a typo (and inf overflowed at run time)


_CPU_ERROR = "cpu must be a positive number of cores like 1, 0.5 or '2', got {!r} (millicores like '500m' work too)"


def cpu_cores(value: object) -> float:
    """Cores from ``1``, ``0.5``, ``"2"`` or millicores ``"500m"``; the one parser of a cpu value."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigurationError(_CPU_ERROR.format(value))
    try:
        cores = float(value[:-1]) / 1000 if isinstance(value, str) and value.strip().endswith("m") else float(value)
    except (ValueError, OverflowError):  # OverflowError: an int such as 10**400
        raise ConfigurationError(_CPU_ERROR.format(value)) from None
    if not (math.isfinite(cores) and 0 < cores <= _MAX_CPU):  # inf, nan and absurd limits (they overflowed at run time)
        raise ConfigurationError(_CPU_ERROR.format(value))
    return cores


def _pair(value: object, what: str) -> tuple[object, ...]:
    """``(value,)`` for one quantity, ``(request, limit)`` for a pair; anything else is refused."""
    if not isinstance(value, tuple):
        return (value,)
    if len(value) != 2:
        raise ConfigurationError(f"{what} must be one value or a (request, limit) pair, got {value!r}")
    return value


@dataclass(frozen=True)
class Resources:
    """What one action may use: ``cpu`` (cores or '500m'), ``memory`` ('512Mi'), ``gpu`` ('A100:2', a count
    or a ``Device``), ``disk`` and ``shm`` ('1Gi' or 'auto'); cpu and memory may be ``(request, limit)``."""

    cpu: int | float | str | tuple | None = None
    memory: str | int | tuple | None = None
    gpu: Any = None
    disk: str | None = None
    shm: str | None = None

    def __post_init__(self) -> None:
        if self.cpu is not None:
            cores = [cpu_cores(c) for c in _pair(self.cpu, "cpu")]
            if cores[0] > cores[-1]:
                raise ConfigurationError(f"cpu=(request, limit) needs request <= limit, got {self.cpu!r}")
        if self.memory is not None:
            sizes = [memory_bytes(m) for m in _pair(self.memory, "memory")]
            if sizes[0] > sizes[-1]:
                raise ConfigurationError(f"memory=(request, limit) needs request <= limit, got {self.memory!r}")
        gpu = self.gpu
        if gpu is not None and not (
            (isinstance(gpu, int) and not isinstance(gpu, bool) and gpu >= 0) or (isinstance(gpu, str) and gpu.strip())
            or type(gpu).__name__ == "Device"
        ):
            raise ConfigurationError(f"gpu must be a count >= 0, a spec like 'A100:1' or flyte.GPU(...), got {gpu!r}")
        if self.disk is not None:
            _quantity(self.disk, "disk")
        if self.shm is not None and self.shm != "auto":
            _quantity(self.shm, "shm")

    @property
    def cpu_limit(self) -> float | None:
        return None if self.cpu is None else cpu_cores(_pair(self.cpu, "cpu")[-1])

    @property
    def memory_limit(self) -> int | None:
        return None if self.memory is None else memory_bytes(_pair(self.memory, "memory")[-1])

    @property
    def shm_bytes(self) -> int | None:
        """``/dev/shm`` size for containers; ``"auto"`` means as large as the memory limit."""
        if self.shm is None:
            return None
        return self.memory_limit if self.shm == "auto" else memory_bytes(self.shm)

    def get_device(self) -> Any:
        """The accelerator asked for, as a ``Device`` (None when none), as in the SDK."""
        from .devices import device_from_gpu

        return device_from_gpu(self.gpu)

    def get_shared_memory(self) -> str | None:
        return None if self.shm is None else ("" if self.shm == "auto" else self.shm)


def _quantity(value: object, what: str) -> None:
    if not isinstance(value, str):
        raise ConfigurationError(f"{what} must be a size string like '10Gi', got {value!r}")
    try:
        memory_bytes(value)
    except ConfigurationError:
        raise ConfigurationError(f"{what} must be a size string like '10Gi', got {value!r}") from None


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
