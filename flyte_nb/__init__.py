"""flyte_nb: the Flyte 2 programming model, live in Jupyter notebooks.

``import flyte_nb as flyte`` runs code written for the Flyte 2 SDK: environments and tasks,
``asyncio.gather`` and ``flyte.map`` fan-outs, groups, retries, timeouts, and runs that proceed
on a background engine loop while the notebook stays usable.
"""

from __future__ import annotations

from ._version import __version__

from .api.cluster_only import (
    Documentation,
    Link,
    PodTemplate,
    build,
    build_images,
    deploy,
    init_from_api_key,
    init_in_cluster,
    init_passthrough,
    is_control_plane_available,
    load_interactive_ctx,
    load_plugin_config,
    logger,
    new_condition,
    rerun,
    run_python_script,
    serve,
    system_logger,
    version,
    with_servecontext,
)
from .api.config import init, init_from_config
from .api.environment import TaskEnvironment
from .api.environment import TaskEnvironment as Environment
from .api.history import StoredAction, StoredRun, get_run, runs
from .api.image import Image
from .api.map import map
from .api.cache_policies import CachePolicy, FunctionBodyPolicy, VersionParameters
from .api.devices import AMD_GPU, APPLE_SILICON, GPU, HABANA_GAUDI, TPU, Device, DeviceClass, Neuron
from .api.policies import Backoff, Cache, CacheRequest, Resources, RetryStrategy, ReusePolicy, Timeout, TimeoutType
from .api.rate import Grant, RateLimiter, rate_limit
from .api.run import Run, RunContext, run, with_runcontext
from .api.scopes import group, tags
from .api.semaphore import Semaphore
from .api.task import TaskTemplate
from .api.task import TaskTemplate as AsyncFunctionTaskTemplate
from .checkpoint import BaseCheckpoint, Checkpoint, latest_checkpoint
from .context import current_domain, current_project, ctx, custom_context, get_custom_context
from .engine.action import Action, Phase
from .engine.events import Event, EventKind, subscribe
from .engine.rates import Rate, RateStatistics
from .engine.slots import PoolStatistics
from . import errors
from .errors import (
    ActionDeadlineError,
    ActionQueuedTimeoutError,
    ActionTimeoutError,
    ConfigurationError,
    DeadlockError,
    FlyteNbError,
    OutOfMemoryError,
    RecordedError,
    RunAbortedError,
    RunNotFoundError,
    SerializationError,
    StoreError,
    TaskExitError,
    WorkerDiedError,
)
from .secrets import Secret, SecretRequest
from .traced import trace
from .triggers import Cron, FixedRate, OnArtifact, Trigger, TriggeredArtifact, TriggeredPartition, TriggerTime
from . import durable, io, models, notify, report  # noqa: E402 - flyte.io.File, flyte.report.log as in the SDK


__all__ = [
    "AMD_GPU",
    "APPLE_SILICON",
    "Action",
    "ActionDeadlineError",
    "ActionQueuedTimeoutError",
    "ActionTimeoutError",
    "AsyncFunctionTaskTemplate",
    "Backoff",
    "BaseCheckpoint",
    "Cache",
    "CachePolicy",
    "CacheRequest",
    "Checkpoint",
    "ConfigurationError",
    "Cron",
    "DeadlockError",
    "Device",
    "DeviceClass",
    "Documentation",
    "Environment",
    "Event",
    "EventKind",
    "FixedRate",
    "FlyteNbError",
    "FunctionBodyPolicy",
    "GPU",
    "Grant",
    "HABANA_GAUDI",
    "Image",
    "Link",
    "Neuron",
    "OnArtifact",
    "OutOfMemoryError",
    "Phase",
    "PodTemplate",
    "PoolStatistics",
    "Rate",
    "RateLimiter",
    "RateStatistics",
    "RecordedError",
    "Resources",
    "RetryStrategy",
    "ReusePolicy",
    "Run",
    "RunAbortedError",
    "RunContext",
    "RunNotFoundError",
    "Secret",
    "SecretRequest",
    "Semaphore",
    "SerializationError",
    "StoreError",
    "TaskExitError",
    "StoredAction",
    "StoredRun",
    "TPU",
    "TaskEnvironment",
    "TaskTemplate",
    "Timeout",
    "TimeoutType",
    "Trigger",
    "TriggerTime",
    "TriggeredArtifact",
    "TriggeredPartition",
    "VersionParameters",
    "WorkerDiedError",
    "build",
    "build_images",
    "ctx",
    "current_domain",
    "current_project",
    "custom_context",
    "deploy",
    "errors",
    "get_custom_context",
    "get_run",
    "group",
    "init",
    "init_from_api_key",
    "init_from_config",
    "init_in_cluster",
    "init_passthrough",
    "io",
    "is_control_plane_available",
    "latest_checkpoint",
    "load_interactive_ctx",
    "load_plugin_config",
    "logger",
    "map",
    "models",
    "new_condition",
    "notify",
    "rate_limit",
    "durable",
    "report",
    "rerun",
    "run",
    "run_python_script",
    "runs",
    "serve",
    "subscribe",
    "system_logger",
    "tags",
    "trace",
    "version",
    "with_runcontext",
    "with_servecontext",
]


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext flyte_nb``: the ``%environment``, ``%%task``, ``%%run`` and ``%flyte`` magics."""
    from .notebook.magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: object) -> None:
    """``%unload_ext flyte_nb``: remove the magics."""
    from .notebook.magics import unload_ipython_extension as unload

    unload(ipython)


def _register_display() -> None:
    """Inside a Jupyter kernel, a displayed ``Run`` becomes a live widget (no %load_ext needed)."""
    from .notebook.display import register_if_in_kernel

    register_if_in_kernel()


_register_display()
