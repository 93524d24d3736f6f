"""Tasks: functions that become actions when called inside a run.

The seam is tiny, as in Flyte 2: ``__call__`` asks whether an action's body is running; if not,
the call is a plain function call (so tasks stay easy to test), if so the controller schedules an
action. Async tasks return an awaitable; sync tasks block only their caller, never the loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import itertools
import uuid
import weakref
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from ..engine import controller
from ..engine.context import current_action, current_channel, current_group, current_tags
from ..engine.loop import engine
from ..engine.placement import Placement, Reuse
from ..engine.spec import TaskSpec
from ..errors import ConfigurationError
from ..environ import with_environment_variables
from ..secrets import secrets_from_request
from ..triggers import triggers_from_request
from .cache_policies import with_policies
from .rate import check_tag_limit
from .policies import (
    CacheRequest,
    RetryStrategy,
    TimeoutType,
    cache_from_request,
    retry_from_request,
    seconds_from,
    time_bounds_from_request,
    timeout_from_request,
)

if TYPE_CHECKING:
    from .environment import TaskEnvironment


def check_throttle(throttle: Mapping[str, Any] | None) -> dict[str, Any]:
    if throttle is None:
        return {}
    if not isinstance(throttle, Mapping):
        raise ConfigurationError(f"throttle must map tag names to limits, like {{'db': 2}}, got {throttle!r}")
    for tag in throttle:
        if not isinstance(tag, str) or not tag:
            raise ConfigurationError(f"throttle keys must be tag names, got {tag!r}")
    return {tag: check_tag_limit(tag, limit) for tag, limit in throttle.items()}


def check_env_vars(env_vars: object, what: str = "env_vars") -> dict[str, str]:
    if env_vars is None:
        return {}
    if not isinstance(env_vars, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env_vars.items()):
        raise ConfigurationError(f"{what} must map str to str, like {{'LOG_LEVEL': 'debug'}}, got {env_vars!r}")
    return dict(env_vars)


def check_tags(tags: object) -> tuple[str, ...]:
    if tags is None:
        return ()
    if isinstance(tags, str):
        tags = (tags,)
    if not isinstance(tags, (list, tuple, set, frozenset)) or not all(isinstance(t, str) and t for t in tags):
        raise ConfigurationError(f"tags must be a list of non-empty strings, got {tags!r}")
    return tuple(dict.fromkeys(tags))


def placement_of(environment: TaskEnvironment) -> Placement:
    """The frozen placement backends read (normalised once, when a task is defined)."""
    resources = environment.resources
    policy = environment.reusable
    reuse = None
    if policy is not None:
        low, high = policy.replicas if isinstance(policy.replicas, tuple) else (policy.replicas,) * 2
        ttl = seconds_from(policy.idle_ttl, "idle_ttl") if policy.idle_ttl is not None else None
        reuse = Reuse(low, high, ttl, policy.concurrency)
    image = environment.image
    try:
        hash(image)
    except TypeError:
        image = repr(image)
    return Placement(
        env_name=environment.name, backend=environment.backend, image=image,
        cpu=resources.cpu_limit if resources is not None else None,
        memory=resources.memory_limit if resources is not None else None,
        gpu=resources.gpu if resources is not None else None,
        env_vars=tuple(sorted(environment.env_vars.items())), concurrency=environment.concurrency, reuse=reuse,
    )


_SESSION = uuid.uuid4().hex[:12]
_numbers = itertools.count(1)
_live: weakref.WeakValueDictionary[str, TaskTemplate] = weakref.WeakValueDictionary()
"""Tasks by token: a task shipped to a worker and sent back in a child call is the kernel's own object."""



_FLYTE_TASK_OPTIONS = {"pod_template", "max_inline_io_bytes", "interruptible", "queue", "triggers", "links", "secrets",
                       "service_account", "task_resolver", "entrypoint", "produces_artifacts", "plugin_config"}
_PLACEMENT = ("resources", "env_vars", "reusable")
"""Options of ``override`` that change where a task runs: they make a derived environment."""


P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


class TaskTemplate(Generic[P, R]):
    """A task of an environment. Call it like the function; inside a run each call is an action.

    Generic over the function's parameters and return type, so ``task(1)`` is typed as ``func(1)``
    (an async task's call is awaitable, as the function's is).
    """

    def __init__(
        self,
        func: Callable[P, R],
        environment: TaskEnvironment,
        *,
        short_name: str | None = None,
        retries: int | RetryStrategy | None = 0,
        timeout: TimeoutType = None,
        cache: CacheRequest = None,
        tags: list[str] | tuple[str, ...] | str | None = None,
        throttle: Mapping[str, int] | None = None,
        source: str | None = None,
        docs: Any = None,
        report: bool = False,
        **flyte_options: Any,
    ) -> None:
        unknown = set(flyte_options) - _FLYTE_TASK_OPTIONS
        if unknown:
            raise ConfigurationError(
                f"env.task got unknown option(s): {', '.join(sorted(unknown))}; expected retries, timeout, cache, tags, "
                "throttle, short_name (or a Flyte option such as pod_template)")
        if not callable(func) or isinstance(func, TaskTemplate):
            raise ConfigurationError(f"@env.task decorates a function, got {func!r}")
        self._options = {
            "short_name": short_name, "retries": retries, "timeout": timeout, "cache": cache, "tags": tags,
            "throttle": throttle, "source": source, "docs": docs, "report": report, **flyte_options,
        }
        inner = func.func if isinstance(func, functools.partial) else func
        if inspect.isasyncgenfunction(inner) or inspect.isgeneratorfunction(inner):
            name = getattr(inner, "__name__", None) or repr(inner)
            raise ConfigurationError(f"task `{name}` is a generator; tasks must return their result")
        self.func: Callable[P, R] = func
        self.environment = environment
        self.short_name = short_name or getattr(inner, "__name__", "task")
        self.name = f"{environment.name}.{self.short_name}"
        self.is_async = inspect.iscoroutinefunction(inner)
        self.retries = retry_from_request(retries)
        self.timeout = timeout_from_request(timeout)
        self.cache = with_policies(cache_from_request(cache) if cache is not None else environment.cache, inner)
        self.time_bounds = time_bounds_from_request(timeout)
        self.secrets = secrets_from_request(flyte_options.get("secrets") or environment.secrets)
        self.triggers = triggers_from_request(flyte_options.get("triggers"))
        self.tags = check_tags(tags)
        self.throttle = check_throttle(throttle)
        self.source = source
        self.docs = docs
        self.report = report
        functools.update_wrapper(self, inner)
        self.token = f"{_SESSION}-{next(_numbers)}"  # unique for the kernel's life, unlike id()
        _live[self.token] = self
        self.spec = TaskSpec(
            name=self.name,
            func=with_environment_variables(func, environment.env_vars, f"task `{self.name}`", self.secrets),
            is_async=self.is_async,
            env_name=environment.placement_key,
            backend=environment.backend,
            retry=self.retries,
            timeout=self.timeout,
            deadline=self.time_bounds.deadline,
            max_queued=self.time_bounds.max_queued_time,
            tags=self.tags,
            throttle=self.throttle,
            env_pool=environment.pool,
            env_rate=getattr(environment, "rate_pool", None),
            cache=self.cache,
            source=source,
            placement=placement_of(environment),
        )

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        parent = current_action.get()
        if parent is None:
            channel = current_channel.get()
            if channel is None:
                return self.func(*args, **kwargs)
            if self.is_async:  # inside a worker: the kernel makes the call an action
                return channel.call(self, args, kwargs, current_group.get(), current_tags.get())
            return channel.call_sync(self, args, kwargs, current_group.get(), current_tags.get())
        if self.is_async:
            return _on_engine(controller.call(self.spec, args, kwargs, parent, current_group.get(), current_tags.get()))
        return controller.call_blocking(self.spec, args, kwargs, parent)

    @overload
    def aio(self: TaskTemplate[P, Coroutine[Any, Any, T]], *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, T]: ...
    @overload
    def aio(self: TaskTemplate[P, T], *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, T]: ...

    def aio(self, *args: Any, **kwargs: Any) -> Coroutine[Any, Any, Any]:
        """Awaitable form of any task (the way to call a sync task from async code)."""
        parent = current_action.get()
        if parent is None:
            channel = current_channel.get()
            if channel is not None:
                return channel.call(self, args, kwargs, current_group.get(), current_tags.get())
            if self.is_async:
                return self.func(*args, **kwargs)
            return asyncio.to_thread(self.func, *args, **kwargs)
        return _on_engine(controller.call(self.spec, args, kwargs, parent, current_group.get(), current_tags.get()))

    def forward(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """The function itself, called here even inside a run (Flyte's ``task.forward``): no action."""
        return self.func(*args, **kwargs)

    def override(self, **options: Any) -> TaskTemplate[P, R]:
        """A copy of this task with options changed, as Flyte's ``task.override(...)``.

        ``retries``, ``timeout``, ``cache``, ``secrets``, ``tags``, ``short_name``… apply to the copy;
        ``resources``, ``env_vars`` and ``reusable`` give it a derived environment (same name, limits and
        concurrency; its own workers or containers). ``env_vars`` add to the environment's.
        """
        placement = {name: options.pop(name) for name in _PLACEMENT if name in options}
        environment = self.environment
        if placement or options.get("secrets") is not None:
            reusable = placement.get("reusable", environment.reusable)
            if reusable == "off":
                placement["reusable"] = reusable = None
            changed = [name for name in ("resources", "env_vars") if placement.get(name) is not None]
            changed += ["secrets"] if options.get("secrets") is not None else []
            if reusable is not None and changed:
                raise ConfigurationError(
                    f"cannot override {', '.join(changed)} of task `{self.name}`: it is reusable and uses its "
                    "environment's; pass reusable='off' to override them")
            if placement.get("env_vars") is not None:
                placement["env_vars"] = environment.env_vars | check_env_vars(placement["env_vars"])
            if placement:
                environment = environment.derived(**placement)
        return TaskTemplate(self.func, environment, **(self._options | options))

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as function + options + token: unpickled where the token is live (the kernel) it is
        the same object again; elsewhere (a worker) it is rebuilt, and its calls go back to the kernel."""
        return (_rebuild_task, (self.func, self.environment, self._options, self.token))

    def __repr__(self) -> str:
        kind = "async" if self.is_async else "sync"
        return f"<task {self.name} ({kind})>"


def _rebuild_task(func: Callable[..., Any], environment: TaskEnvironment, options: dict[str, Any],
                  token: str | None = None) -> TaskTemplate:
    live = _live.get(token) if token is not None else None
    if live is not None:
        return live
    task = TaskTemplate(func, environment, **options)
    if token is not None:
        _live.pop(task.token, None)
        task.token = token
        _live[token] = task
    return task


def _on_engine(coro: Coroutine[Any, Any, Any]) -> Coroutine[Any, Any, Any]:
    """Awaitable on whatever loop the caller uses; the action itself always runs on the engine."""
    if engine().on_thread():
        return coro
    return _awaited_elsewhere(coro)


async def _awaited_elsewhere(coro: Coroutine[Any, Any, Any]) -> Any:
    parent = current_action.get()
    future = engine().submit(coro, contextvars.copy_context(), parent.run.track if parent else None)
    return await asyncio.wrap_future(future)
