"""The backend interface and registry, owned by the engine: where an action's body executes.

Backends are chosen per environment by name and loaded lazily (as anyio loads its backends), so
that an environment on the in-process backend never imports docker or distributed, and the
engine imports no backend module. A backend gets value objects: the action (with its frozen
``spec.placement``) and its inputs; a task call made inside a worker comes back as a child action
through ``engine.controller.call``.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from .kernel import kernel

if TYPE_CHECKING:
    from .action import Action
    from .slots import SlotPool

_KNOWN = {
    "inline": "flyte_nb.backends.inline:InlineBackend",
    "process": "flyte_nb.backends.process:ProcessBackend",
    "docker": "flyte_nb.backends.docker:DockerBackend",
    "dask": "flyte_nb.backends.dask.backend:DaskBackend",
}
CLUSTER = "dask"  # the backend whose pools span kernels (cluster-wide throttles, rates)


class Backend(ABC):
    """Executes one attempt of an action; cancelling the await must stop the attempt."""

    name: str

    @abstractmethod
    async def execute(self, action: Action, args: tuple, kwargs: dict) -> Any:
        """Run the action's body with ``args``/``kwargs`` and return its result or raise its error."""

    def pools(self, spec: Any) -> tuple[Any, ...]:
        """Slot pools this backend adds to an action of ``spec`` (workers, containers…)."""
        return ()

    def cluster_pool(self, name: str, capacity: int) -> SlotPool:
        """A pool of ``capacity`` shared by every kernel on this backend's cluster (``cluster_wide=``)."""
        raise ConfigurationError(f"the {self.name} backend has no cluster: cluster-wide limits need the dask backend")

    async def shutdown(self) -> None:
        """Release workers, containers, connections (nothing to release by default)."""
        return None


def known_backends() -> tuple[str, ...]:
    return tuple(_KNOWN)


def check_backend_name(name: object) -> str:
    if not isinstance(name, str) or name not in _KNOWN:
        raise ConfigurationError(f"unknown backend {name!r}; choose one of: {', '.join(sorted(_KNOWN))}")
    return name


def set_default_backend(name: str) -> None:
    """The backend of environments that do not name one (``flyte_nb.init(backend=...)``)."""
    kernel().default_backend = check_backend_name(name)


def default_backend() -> str:
    return kernel().default_backend


def loaded_backend(name: str) -> Backend | None:
    """The backend ``name`` if this kernel has loaded it already, else None (nothing is imported)."""
    return kernel().backends.get(name)


def get_backend(name: str | None) -> Backend:
    """The kernel's backend ``name`` (default: the default backend), loaded on first use."""
    loaded = kernel().backends
    name = name or kernel().default_backend
    backend = loaded.get(name)
    if backend is None:
        module, cls = _KNOWN[check_backend_name(name)].split(":")
        backend = loaded.setdefault(name, getattr(importlib.import_module(module), cls)())
    return backend
