"""flyte_nb: the Flyte 2 programming model, live in Jupyter notebooks.

``import flyte_nb as flyte`` runs code written for the Flyte 2 SDK: environments and tasks,
``asyncio.gather`` and ``flyte.map`` fan-outs, groups, retries, timeouts, and runs that proceed
on a background engine loop while the notebook stays usable.
"""

from __future__ import annotations

from .api.config import init, init_from_config
from .api.environment import TaskEnvironment
from .api.image import Image
from .api.map import map
from .api.policies import Backoff, Cache, Resources, RetryStrategy, ReusePolicy, Timeout
from .api.run import Run, RunContext, run, with_runcontext
from .api.scopes import group, tags
from .api.semaphore import Semaphore
from .api.task import TaskTemplate
from .engine.action import Action, Phase
from .engine.events import Event, EventKind, subscribe
from .engine.slots import PoolStatistics
from .errors import (
    ActionTimeoutError,
    ConfigurationError,
    DeadlockError,
    FlyteNbError,
    RunAbortedError,
)

__version__ = "0.1.0"

__all__ = [
    "Action",
    "ActionTimeoutError",
    "Backoff",
    "Cache",
    "ConfigurationError",
    "DeadlockError",
    "Event",
    "EventKind",
    "FlyteNbError",
    "Image",
    "Phase",
    "PoolStatistics",
    "Resources",
    "RetryStrategy",
    "ReusePolicy",
    "Run",
    "RunAbortedError",
    "RunContext",
    "Semaphore",
    "TaskEnvironment",
    "TaskTemplate",
    "Timeout",
    "group",
    "init",
    "init_from_config",
    "map",
    "run",
    "subscribe",
    "tags",
    "with_runcontext",
]


def _install_listeners() -> None:
    from .data.summary import write_summary

    subscribe(write_summary)


_install_listeners()
