"""Starting runs and watching them: ``flyte_nb.run``, ``with_runcontext`` and the ``Run`` handle."""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import threading
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from datetime import timedelta
from typing import Any

from ..context import custom_context
from ..triggers import bind_trigger_inputs
from ..data.recorder import attach
from ..data.origin import run_url
from ..data.store import get_store, recording_enabled
from ..engine import controller
from ..engine.action import Action, Phase
from ..engine.loop import engine
from ..engine.backend import CLUSTER, get_backend
from ..engine.kernel import kernel
from ..engine.names import check_run_name
from ..engine.run_state import GroupStats, RunState
from ..engine.slots import PoolStatistics
from ..errors import ConfigurationError, DeadlockError, without_engine_frames
from . import progress
from .environment import TaskEnvironment
from .action_pages import ActionList, peak_concurrency
from .policies import seconds_from
from .stored import StoreRecords, StoredAction, open_store, rows_of, stored_run_id as _stored_run_id
from .task import TaskTemplate, check_env_vars, check_throttle

_KEEP = 200  # how many finished runs this kernel keeps in memory


class Run:
    """A handle on a run that proceeds on the engine loop while the caller goes on."""

    def __init__(self, state: RunState, driver: TaskTemplate) -> None:
        self.state = state  # the engine's record of the run: what views (widget, history) read
        self.driver = driver  # the task that drives it
        self.store_path = get_store().path if recording_enabled() else None  # where it is recorded, if it is

    # ----------------------------------------------------------- identity
    @property
    def name(self) -> str:
        return self.state.name

    @property
    def url(self) -> str:
        """Where the run can be looked at: the Runs panel of the Jupyter server, or the run store's file."""
        return run_url(self.name, self.store_path or get_store().path)

    @property
    def phase(self) -> str:
        """``queued``, ``running``, ``succeeded``, ``failed`` or ``aborted``."""
        return self.state.phase

    status = phase

    def done(self) -> bool:
        return self.state.done.done()

    def add_done_callback(self, fn: Callable[[Run], Any]) -> None:
        """Call ``fn(run)`` when the run ends (at once if it has), on the thread that ends it."""
        self.state.done.add_done_callback(lambda _: fn(self))

    # ------------------------------------------------------------ waiting
    def wait(self, timeout: float | str | timedelta | None = None, quiet: bool | None = None) -> None:
        """Block until the run ends (it does not raise the run's error; ``outputs()`` does).

        ``timeout``: seconds, a duration such as ``"1s"`` / ``"5m"``, or a ``timedelta``. Outside a
        notebook, a run that takes more than a second prints a progress line each second unless ``quiet``.
        """
        timeout = wait_seconds(timeout)
        if engine().on_thread() and not self.done():
            raise DeadlockError(f"run.wait() inside a task would block the engine; use `await run` instead ({self.name})")
        if quiet is None:
            quiet = progress.in_kernel()
        if quiet:
            concurrent.futures.wait([self.state.done], timeout=timeout)
        else:
            progress.follow(self, timeout)
        if not self.state.done.done():
            raise TimeoutError(f"run {self.name} is still {self.phase} after {timeout:g}s")

    def outputs(self, timeout: float | str | timedelta | None = None) -> Any:
        """The driver's return value, waiting for it; raises the run's error with its own type."""
        self.wait(timeout, quiet=True)
        error = self.state.done.exception()
        if error is not None:
            raise error.with_traceback(without_engine_frames(error.__traceback__))
        return self.state.done.result()

    result = outputs

    def __await__(self) -> Generator[Any, None, Any]:
        """``await run``: the outputs, from any event loop."""
        return asyncio.wrap_future(self.state.done).__await__()

    def abort(self, reason: str | None = None, wait: float | None = 5.0) -> None:
        """Cancel every queued and running action and release their slots.

        Waits up to ``wait`` seconds for the run to stop (``None``: do not wait).
        """
        wait = wait_seconds(wait, "wait")
        controller.abort(self.state, reason)
        if wait and not engine().on_thread():
            concurrent.futures.wait([self.state.done], timeout=wait)

    def inputs(self) -> dict[str, Any]:
        """The driver's inputs by parameter name (defaults filled in)."""
        from ..data.cache import bind_inputs

        return bind_inputs(self.state.driver, self.state.args, self.state.kwargs)

    def retry_failed(self, task: TaskTemplate | None = None, name: str | None = None) -> Run:
        """A new run of the same driver and inputs where the actions that succeeded here come from the
        run store (phase ``cached``, not executed) and only the failed ones run again.

        ``task``: the driver as a re-run cell defines it now (same name), if it changed.
        """
        if not self.done():
            raise ConfigurationError(f"run {self.name} is still {self.phase}; wait for it or abort it first")
        driver = self.driver
        if task is not None and (not isinstance(task, TaskTemplate) or task.name != driver.name):
            raise ConfigurationError(f"run {self.name} was driven by task {driver.name}, not {task!r}")
        return retry_run(self.name, task or driver, self.state.args, self.state.kwargs, name)

    # ------------------------------------------------------------- records
    @property
    def error(self) -> BaseException | None:
        return self.state.error

    @property
    def actions(self) -> Sequence[Action | StoredAction]:
        """Every action so far: task, group, tags, phase, attempts, timings, error.

        A list while the kernel still holds them all; for a run larger than the kernel's window of
        finished actions (``RunState.window``) an :class:`~.action_pages.ActionList` that reads the
        older ones back from the run store page by page (they come as ``StoredAction``).
        """
        state = self.state
        count = state.action_count
        kept = state.kept.copy()  # one C call: the engine thread changes it meanwhile
        if len(kept) >= count or state.records is None:
            return list(kept.values())  # in call order: kept in the order they were made
        return self._pages(count, kept)

    def _pages(self, count: int, kept: dict[int, Action]) -> ActionList:
        from ..data.recorder import flush

        flush()  # the store has every action that left memory, and more
        store = get_store()
        name = self.name
        return ActionList(store, name, lambda: _stored_run_id(store, name), count, kept)

    def action(self, name: str) -> Action | StoredAction:
        number = int(name[1:]) if name.startswith("a") and name[1:].isdigit() else -1
        state = self.state
        if not 0 <= number < state.action_count:
            raise KeyError(f"run {self.name} has no action {name!r}")
        found = state.kept.get(number)
        if found is not None or state.records is None:
            return found  # type: ignore[return-value]
        return self._pages(state.action_count, {})[number]

    @property
    def groups(self) -> dict[str, GroupStats]:
        return dict(self.state.groups)

    def statistics(self) -> list[PoolStatistics]:
        """A snapshot of every slot pool this run uses: capacity, holders, waiting."""
        return self.state.statistics()

    def peak_concurrency(self, task: TaskTemplate | str | None = None, tag: str | None = None) -> int:
        """The most actions that ran at one instant (from recorded start/end times).

        Counts actions other than the driver, optionally only those of ``task`` or carrying ``tag``.
        """
        name = task.name if isinstance(task, TaskTemplate) else task
        state = self.state
        if len(state.kept) < state.action_count and state.records is not None:  # older ones are in the store
            from ..data.recorder import flush

            flush()
            return peak_concurrency(get_store(), _stored_run_id(get_store(), self.name), name, tag)
        edges: list[tuple[float, int]] = []
        for action in list(state.kept.values()):
            if action.parent is None or action.started_at is None:
                continue
            if (name is not None and action.task != name) or (tag is not None and tag not in action.tags):
                continue
            edges.append((action.started_at, 1))
            edges.append((action.ended_at if action.ended_at is not None else float("inf"), -1))
        edges.sort()
        level = top = 0
        for _, step in edges:
            level += step
            top = max(top, level)
        return top

    @property
    def counts(self) -> dict[str, int]:
        return {str(phase): self.state.counts[phase] for phase in Phase}

    @property
    def duration(self) -> float | None:
        state = self.state
        if state.started_at is None:
            return None
        return (state.ended_at or time.time()) - state.started_at

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={v}" for k, v in self.counts.items() if v)
        return f"<Run {self.name} {self.phase} [{counts}]>"


def wait_seconds(timeout: object, what: str = "timeout") -> float | None:
    """A wait's ``timeout`` in seconds (None: no limit), or a ConfigurationError saying what fits."""
    seconds = None if timeout is None else seconds_from(timeout, what)
    return None if seconds is not None and seconds > threading.TIMEOUT_MAX else seconds  # longer: forever


class _DefaultEnvironment:
    """The kernel's environment ``default`` (a :class:`Kernel` part)."""

    def __init__(self) -> None:
        self.environment = TaskEnvironment("default")


def default_environment() -> TaskEnvironment:
    """The environment ``default`` of tasks given none (plain functions passed to ``run``, ``%%task``)."""
    return kernel().part(_DefaultEnvironment).environment


def _driver(task: Any) -> TaskTemplate:
    if isinstance(task, TaskTemplate):
        return task
    if callable(task):
        return default_environment().task(task)
    raise ConfigurationError(f"flyte_nb.run needs a task (or a function) to drive the run, got {task!r}")


_FLYTE_RUN_OPTIONS = {
    "mode", "service_account", "version", "copy_style", "dry_run", "copy_bundle_to", "interactive_mode",
    "raw_data_path", "run_base_dir", "project", "domain", "labels", "annotations", "cluster_pool", "log_level",
    "queue", "custom_context", "cache_lookup_scope", "preserve_original_types", "run_start_time", "interruptible",
    "log_format", "user_log_level", "reset_root_logger", "max_action_concurrency", "notifications", "debug",
    "tracked", "tracked_strict", "_tracker",
}


class RunContext:
    """Options for the runs started through it: ``with_runcontext(name=..., throttle=...).run(task, ...)``."""

    def __init__(
        self,
        *,
        name: str | None = None,
        throttle: Mapping[str, int] | None = None,
        env_vars: Mapping[str, str] | None = None,
        overwrite_cache: bool = False,
        disable_run_cache: bool = False,
        listeners: list[Callable[[Any], Any]] | None = None,
        cluster_wide: bool | list[str] | tuple[str, ...] = False,
        **flyte_options: Any,
    ) -> None:
        unknown = set(flyte_options) - _FLYTE_RUN_OPTIONS
        if unknown:
            raise ConfigurationError(f"with_runcontext got unknown option(s): {', '.join(sorted(unknown))}")
        if name is not None:
            check_run_name(name)
        if listeners is not None and (not isinstance(listeners, (list, tuple)) or not all(map(callable, listeners))):
            raise ConfigurationError(f"listeners must be a list of callables taking an Event, got {listeners!r}")
        self.name = name
        self.throttle = check_throttle(throttle)
        self.env_vars = check_env_vars(env_vars)
        self.overwrite_cache = overwrite_cache
        self.disable_run_cache = disable_run_cache
        self.listeners = list(listeners or ())
        if cluster_wide is True:
            cluster_wide = tuple(self.throttle)
        elif cluster_wide is False:
            cluster_wide = ()
        if not isinstance(cluster_wide, (list, tuple)) or any(t not in self.throttle for t in cluster_wide):
            raise ConfigurationError(f"cluster_wide must be True or a list of tags throttled here ({sorted(self.throttle)}), "
                                     f"got {cluster_wide!r}")
        self.cluster_wide = tuple(cluster_wide)  # tag throttles held on the Dask scheduler, for every kernel
        self.options = flyte_options
        self.run = _Runner(self)
        self._retry_of: str | None = None  # set by Run.retry_failed: serve that run's successes first

    def start(self, task: Any, args: tuple, kwargs: dict) -> Run:
        driver = _driver(task)
        kwargs = bind_trigger_inputs(driver.func, getattr(driver, "triggers", ()), args, kwargs)  # run by hand
        throttle = driver.environment.throttle | driver.throttle | self.throttle
        names = kernel().names
        state = RunState(names.claim(self.name), driver.spec, args, kwargs, throttle)
        state.listeners.extend(self.listeners)
        if self.cluster_wide:
            _cluster_wide_throttles(state, self.cluster_wide, throttle)
        names.add(attach(state, read_cache=not (self.overwrite_cache or self.disable_run_cache),
                         write_cache=not self.disable_run_cache, retry_of=self._retry_of, taken=names.__contains__,
                         on_abort=lambda reason: controller.abort(state, reason)))  # store + cache; may rename
        if state.cache is not None:  # recorded: its actions read their values back from the store
            state.records = StoreRecords(get_store())
        with custom_context(**(self.options.get("custom_context") or {})):  # the run's actions inherit it
            controller.start(state)
        return _remember(Run(state, driver))


def _cluster_wide_throttles(state: RunState, tags: tuple[str, ...], throttle: Mapping[str, int]) -> None:
    """Replace these tags' pools of ``state`` by pools leased from the Dask scheduler."""
    backend = get_backend(CLUSTER)
    for tag in tags:
        old = state.throttles.get(tag)
        if old is None:
            raise ConfigurationError(f"cluster_wide tag {tag!r} has no whole-number throttle (rates are not cluster-wide)")
        state.pools.pop(old.name, None)
        pool = state.throttles[tag] = backend.cluster_pool(f"tag:{tag}", old.capacity)
        state.pools[pool.name] = pool


def _remember(run: Run) -> Run:
    kept = kernel().runs
    kept[run.name] = run
    if len(kept) > _KEEP:
        for name, old in list(kept.items()):
            if old.done():
                del kept[name]
                if len(kept) <= _KEEP:
                    break
    return run


def _retry_name(name: str) -> str:
    return re.sub(r"-retry(-\d+)?$", "", name) + "-retry"


def retry_run(source: str, task: TaskTemplate, args: tuple, kwargs: dict, name: str | None = None) -> Run:
    """Start a run that reads ``source``'s successful outputs first (see ``Run.retry_failed``)."""
    store = open_store()
    if store is None:
        raise ConfigurationError("retry_failed needs the run store, which is off (FLYTE_NB_STORE)")
    if not rows_of(store, "SELECT name FROM runs WHERE name = ?", (source,)):
        raise ConfigurationError(f"run {source} is not in the run store (it ran with recording off): "
                                 "there is nothing to retry from")
    context = RunContext(name=name or _retry_name(source))
    context._retry_of = source
    return context.start(task, args, kwargs)


def kernel_runs() -> list[Run]:
    """Runs started by this kernel (live ones always; the last finished ones), oldest first."""
    return list(kernel().runs.values())


class _Runner:
    """``flyte_nb.run(task, *args, **kwargs)`` and ``await flyte_nb.run.aio(...)``: start a run."""

    def __init__(self, context: RunContext | None = None) -> None:
        self._context = context

    def __call__(self, task: Any, *args: Any, **kwargs: Any) -> Run:
        """Start a run of ``task`` and return its handle at once."""
        return (self._context or RunContext()).start(task, args, kwargs)

    async def aio(self, task: Any, *args: Any, **kwargs: Any) -> Run:
        return self(task, *args, **kwargs)

    def __repr__(self) -> str:
        return "flyte_nb.run"


run = _Runner()


def with_runcontext(mode: str | None = None, **options: Any) -> RunContext:
    """Run options (``name``, ``throttle={tag: n}``, ``overwrite_cache`` …); use ``.run(task, ...)``.

    ``mode`` (``"local"``, ``"remote"``, ``"hybrid"``) is Flyte's; every run here is local.
    """
    return RunContext(**options) if mode is None else RunContext(mode=mode, **options)
