"""``TaskEnvironment``: where and how a family of tasks runs (image, resources, backend, limits)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar, overload

from ..backends.base import check_backend_name
from ..engine.rates import Rate
from ..engine.slots import SlotPool
from ..errors import ConfigurationError
from ..secrets import secrets_from_request
from .image import Image
from .policies import CacheRequest, Resources, ReusePolicy, cache_from_request
from .task import TaskTemplate, check_env_vars, check_throttle

P = ParamSpec("P")
R = TypeVar("R")

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


class TaskEnvironment:
    """A named environment; ``@env.task`` turns functions into its tasks.

    ``concurrency`` bounds how many actions of this environment run at once (across runs in this
    kernel); ``throttle`` gives default tag limits to runs driven by its tasks.
    """

    def __init__(
        self,
        name: str,
        *,
        image: Image | str = "auto",
        resources: Resources | None = None,
        env_vars: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        secrets: Any = None,
        cache: CacheRequest = "disable",
        reusable: ReusePolicy | None = None,
        concurrency: int | None = None,
        backend: str | None = None,
        throttle: Mapping[str, Any] | None = None,
        rate: Rate | None = None,
        depends_on: list[TaskEnvironment] | tuple[TaskEnvironment, ...] = (),
        description: str | None = None,
        **flyte_options: Any,
    ) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigurationError(f"environment name must be a word like 'etl' or 'my-env', got {name!r}")
        if not isinstance(image, Image) and not (isinstance(image, str) and image.strip()):
            raise ConfigurationError(f"image must be an Image or an image reference like 'python:3.11-slim', got {image!r}")
        if resources is not None and not isinstance(resources, Resources):
            raise ConfigurationError(f"resources must be flyte_nb.Resources(cpu=..., memory=...), got {resources!r}")
        if reusable is not None and not isinstance(reusable, ReusePolicy):
            raise ConfigurationError(f"reusable must be flyte_nb.ReusePolicy(...), got {reusable!r}")
        unknown = set(flyte_options) - _FLYTE_ONLY
        if unknown:
            raise ConfigurationError(f"TaskEnvironment got unknown option(s): {', '.join(sorted(unknown))}")
        variables = check_env_vars(env, "env") | check_env_vars(env_vars, "env_vars")
        if backend is not None:
            check_backend_name(backend)
        if not isinstance(depends_on, (list, tuple)) or not all(isinstance(e, TaskEnvironment) for e in depends_on):
            raise ConfigurationError(f"depends_on must be a list of TaskEnvironments, got {depends_on!r}")
        if concurrency is not None and (isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1):
            raise ConfigurationError(f"concurrency must be a whole number >= 1 (or None for no limit), got {concurrency!r}")
        self.name = name
        self.image = image
        self.resources = resources
        self.env_vars = variables
        secrets_from_request(secrets)  # checked here, resolved where a task runs
        self.secrets = secrets
        self.cache = cache_from_request(cache)
        self.reusable = reusable
        self.concurrency = concurrency
        self.backend = backend
        self.throttle = check_throttle(throttle)
        self.depends_on = tuple(depends_on)
        self.description = description
        self.pool = SlotPool(concurrency, f"env:{name}") if concurrency is not None else None
        if rate is not None and not isinstance(rate, Rate):
            raise ConfigurationError(f"rate must be a flyte_nb.Rate(limit, per='1s'), got {rate!r}")
        self.rate = rate  # every action of the environment takes a unit of it to start (across runs)
        self.rate_pool = rate.pool(f"rate:env.{name}") if rate is not None else None
        self.tasks: dict[str, TaskTemplate] = {}
        self.flyte_options = dict(flyte_options)
        self.placement_key = name  # backends keep workers and containers per key; derived() makes a new one

    @overload
    def task(self, _func: Callable[P, R]) -> TaskTemplate[P, R]: ...
    @overload
    def task(self, _func: None = None, **options: Any) -> Callable[[Callable[P, R]], TaskTemplate[P, R]]: ...

    def task(self, _func: Callable[..., Any] | None = None, **options: Any) -> Any:
        """Decorator: ``@env.task`` or ``@env.task(retries=3, timeout="30s", tags=["db"], cache="auto")``."""
        if _func is not None:
            return self._make(_func, options)
        return lambda func: self._make(func, options)

    def _make(self, func: Callable[..., Any], options: dict[str, Any]) -> TaskTemplate:
        task = TaskTemplate(func, self, **options)
        self.tasks[task.short_name] = task
        return task

    def clone_with(self, name: str, image: Image | str | None = None, resources: Resources | None = None,
                   env_vars: Mapping[str, str] | None = None, secrets: Any = None,
                   depends_on: list[TaskEnvironment] | None = None, description: str | None = None,
                   **changes: Any) -> TaskEnvironment:
        """A new environment named ``name`` with this one's settings except those given (Flyte's ``clone_with``).

        ``cache``, ``reusable``, ``concurrency``, ``backend``, ``throttle`` and Flyte-only options
        (``interruptible``, ``include``, ``service_account``…) may be given too. Tasks are not copied.
        """
        settings: dict[str, Any] = {
            "image": self.image, "resources": self.resources, "env_vars": self.env_vars, "secrets": self.secrets,
            "cache": self.cache or "disable", "reusable": self.reusable, "concurrency": self.concurrency,
            "backend": self.backend, "throttle": self.throttle, "depends_on": list(self.depends_on),
            "description": self.description, **self.flyte_options,
        }
        given = {"image": image, "resources": resources, "env_vars": env_vars, "secrets": secrets,
                 "depends_on": depends_on, "description": description}
        settings.update({key: value for key, value in given.items() if value is not None})
        if changes.get("reusable") == "off":
            changes["reusable"] = None
        settings.update(changes)
        return TaskEnvironment(name, **settings)

    def derived(self, **changes: Any) -> TaskEnvironment:
        """This environment with placement changed (``task.override(resources=...)``): same name, limits
        and concurrency pool, its own key for workers and containers."""
        clone = object.__new__(TaskEnvironment)  # not copy.copy: __reduce__ keeps only what workers need
        clone.__dict__.update(self.__dict__)
        for key, value in changes.items():
            if key == "resources" and value is not None and not isinstance(value, Resources):
                raise ConfigurationError(f"resources must be flyte_nb.Resources(cpu=..., memory=...), got {value!r}")
            if key == "reusable" and value is not None and not isinstance(value, ReusePolicy):
                raise ConfigurationError(f"reusable must be flyte_nb.ReusePolicy(...) or 'off', got {value!r}")
            setattr(clone, key, value)
        TaskEnvironment._derivations += 1
        clone.placement_key = f"{self.name}~{TaskEnvironment._derivations}"
        clone.tasks = {}
        return clone

    _derivations = 0

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle by name and variables only: where it is unpickled (a worker) no limits apply."""
        return (_rebuild_environment, (self.name, self.env_vars))

    def __repr__(self) -> str:
        extra = f", concurrency={self.concurrency}" if self.concurrency is not None else ""
        return f"TaskEnvironment(name={self.name!r}, backend={self.backend or 'default'!r}{extra})"


def _rebuild_environment(name: str, env_vars: dict[str, str]) -> TaskEnvironment:
    return TaskEnvironment(name, env_vars=env_vars)


_FLYTE_ONLY = {"pod_template", "plugin_config", "queue", "interruptible", "docs", "include", "service_account"}
