"""The Dask backend: actions run on a Dask distributed cluster, code shipped by value.

Connect with ``flyte_nb.init(backend="dask", endpoint="tcp://host:8786")``, with an existing
``distributed.Client`` or a cluster object (``LocalCluster``, ``KubeCluster``, ``GatewayCluster``,
``SLURMCluster`` …: anything with a ``scheduler_address``) as ``init(cluster=...)``, or per
environment with ``TaskEnvironment(..., backend="dask")`` (the connection is the kernel's).
Without either, ``DASK_SCHEDULER_ADDRESS`` (dask config ``scheduler-address``) is used.

This module is the connection: where to connect (``configure``), connecting, and checking that
the workers run the same versions of what ships actions. The rest of the package:
``backend`` (``DaskBackend``: submission and result batching, dead workers), ``pools``
(``ClusterSlotPool``: cluster-wide limits) and ``worker`` (what runs on the Dask workers).
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from typing import Any

import dask
import distributed

from ...data.serialization import FORMAT
from ...errors import ConfigurationError, FlyteNbError


class SchedulerUnreachableError(FlyteNbError, ConnectionError):
    """The Dask scheduler could not be reached (address and timeout in the message)."""


class VersionMismatchError(FlyteNbError):
    """The Dask workers run other versions of the packages that carry actions (listed)."""


_DEFAULT_TIMEOUT = 10.0
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
    from ...engine.backend import loaded_backend

    backend = loaded_backend("dask")
    if isinstance(backend, DaskBackend):
        backend.disconnect()


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


# re-exported here, after the names they import from this module
from .backend import DaskBackend  # noqa: E402
from .pools import ClusterSlotPool  # noqa: E402
from .on_worker import ActionStopped, run_action  # noqa: E402

__all__ = ["ActionStopped", "ClusterSlotPool", "DaskBackend", "SchedulerUnreachableError", "VersionMismatchError",
           "check_versions", "configure", "local_versions", "run_action"]
