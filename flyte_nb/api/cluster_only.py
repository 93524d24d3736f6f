"""SDK names that only mean something with a Flyte cluster, and small SDK types accepted as given.

Calling a cluster-only function fails at once with a one-line error saying what to do here
instead, rather than an ``AttributeError`` deep in a program. The accepted types (``Documentation``,
``Link``, ``PodTemplate``) are kept on the task or environment and otherwise unused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import ConfigurationError
from .config import init

logger = logging.getLogger("flyte_nb")
system_logger = logging.getLogger("flyte_nb.system")


@dataclass(frozen=True)
class Documentation:
    """A task's description (``@env.task(docs=Documentation(...))``)."""

    description: str


class Link:
    """A link shown beside a task in the Flyte UI (accepted; flyte_nb has no per-task links)."""

    def get_link(self, *args: Any, **kwargs: Any) -> str:
        return ""


@dataclass
class PodTemplate:
    """A Kubernetes pod template (accepted; no pods here)."""

    pod_spec: Any = None
    primary_container_name: str = "primary"
    labels: dict[str, str] | None = field(default=None)
    annotations: dict[str, str] | None = field(default=None)


def version() -> str:
    from .._version import __version__

    return __version__


def is_control_plane_available() -> bool:
    """Always False: there is no control plane, runs are local."""
    return False


def _init_like(name: str) -> Callable[..., dict[str, Any]]:
    def initialise(*args: Any, project: str | None = None, domain: str | None = None, org: str | None = None,
                   **options: Any) -> dict[str, Any]:
        init(project=project, domain=domain, org=org)
        return {}

    initialise.__name__ = name
    initialise.__doc__ = f"Flyte's ``{name}``: only project, domain and org mean something here (see ``init``)."
    return initialise


init_from_api_key = _init_like("init_from_api_key")
init_in_cluster = _init_like("init_in_cluster")
init_passthrough = _init_like("init_passthrough")

_ADVICE = {
    "deploy": "run tasks with flyte_nb.run(task, ...)",
    "build": "the docker backend builds an environment's Image when its first task runs",
    "build_images": "the docker backend builds an environment's Image when its first task runs",
    "serve": "start the app yourself; apps are not served by flyte_nb",
    "with_servecontext": "start the app yourself; apps are not served by flyte_nb",
    "rerun": "use flyte_nb.get_run(name).retry_failed() or run the task again",
    "new_condition": "wait on an asyncio.Event or input() in the notebook instead",
    "run_python_script": "run the script in a task with subprocess",
    "load_interactive_ctx": "tasks started from the notebook already have flyte_nb.ctx()",
    "load_plugin_config": "plugins are not loaded by flyte_nb",
}


def _cluster_only(name: str) -> Callable[..., Any]:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise ConfigurationError(f"flyte.{name} needs a Flyte cluster and flyte_nb runs on this machine: "
                                 f"{_ADVICE[name]}")

    refuse.__name__ = name
    refuse.__doc__ = f"Not available here: {_ADVICE[name]}."
    return refuse


deploy, build, build_images, serve, with_servecontext, rerun, new_condition, run_python_script, \
    load_interactive_ctx, load_plugin_config = (_cluster_only(name) for name in _ADVICE)
