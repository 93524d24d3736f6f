"""The controller: runs an action through its lifecycle.

queued → (waiting for slots) → running → succeeded | failed | timed out | cancelled, with retries
(back to queued during the backoff) and an event at every step. Slots are held only while the
action's own code runs: an action that waits on its children lends its slots to them, so a
parent never blocks the leaves it waits for (the deadlock that Prefect's tag limits hit).
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from typing import Any

from .backend import get_backend
from ..errors import ActionTimeoutError, RunAbortedError, TaskExitError, add_note, flyte_error, retryable
from .action import Action, Attempt, Phase
from .bounds import attempt_budget, queue_budget, queue_timeout_error, timeout_error
from .context import current_action, current_group, current_tags
from .events import EventKind
from . import output
from .loop import block_on, engine
from .run_state import GroupStats, RunState
from .slots import SlotPool, acquire_all, release_all, try_acquire_all
from .spec import MISS, TaskSpec

_STRAGGLER_WAIT = 5.0  # seconds an aborted run waits for its actions to unwind


async def call(
    spec: TaskSpec,
    args: tuple,
    kwargs: dict,
    parent: Action,
    group: GroupStats | str | None = None,
    tags: tuple[str, ...] = (),
    index: Any = None,
) -> Any:
    """A task call made inside a run: a new action, executed to the end.

    ``group`` and ``tags`` are those in force where the call was *made* (the coroutine may start
    later, outside the ``with flyte_nb.tags(...)`` block that made it).
    """
    run = parent.run
    action = run.new_action(spec, parent, group, tags)
    action.index = index
    if parent.depth % _HOP_EVERY == _HOP_EVERY - 1:
        return await _on_fresh_stack(run, execute(action, args, kwargs))
    return await execute(action, args, kwargs)


_HOP_EVERY = 16  # nested async calls between fresh tasks (each level costs ~10 frames of the stack)


async def _on_fresh_stack(run: RunState, coro: Any) -> Any:
    """``await coro`` as a task of its own, so that its frames start again from the loop.

    A nested async call runs inside its caller's frames (and greenlet), so the Python stack grows
    by ~10 frames per level and 100 levels hit RecursionError; sync nesting, a thread per level,
    went 400 deep. Every ``_HOP_EVERY`` levels the child starts on a fresh stack instead.
    """
    task = asyncio.get_running_loop().create_task(coro)
    run.track(task)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.cancel()
        await asyncio.wait((task,))  # cancelling the await stops the child before it returns
        raise


def call_blocking(spec: TaskSpec, args: tuple, kwargs: dict, parent: Action) -> Any:
    """A sync task call inside a run: blocks the calling body, never the engine loop."""
    coro = call(spec, args, kwargs, parent, current_group.get(), current_tags.get())
    return block_on(coro, on_task=parent.run.track)


async def execute(action: Action, args: tuple, kwargs: dict) -> Any:
    run = action.run
    parent = action.parent
    lending = parent is not None and bool(parent.pools)
    if lending:
        _lend(parent)
    run.active += 1
    task = asyncio.current_task()
    live = run.live
    live[task] = live.get(task, 0) + 1
    try:
        result = await _attempts(action, args, kwargs)
    except asyncio.CancelledError:
        if lending:
            parent.lent -= 1
        raise
    except BaseException:
        if lending:
            await _reclaim(parent)
        raise
    finally:
        run.active -= 1
        if live[task] > 1:
            live[task] -= 1
        else:
            del live[task]
        if run.active == 0 and run.idle is not None:
            run.idle.set()
    if lending:
        await _reclaim(parent)
    return result


def _lend(parent: Action) -> None:
    parent.lent += 1
    if parent.held:
        parent.held = False
        release_all(parent.pools)


async def _reclaim(parent: Action) -> None:
    parent.lent -= 1
    if parent.lent == 0 and not parent.held and parent.phase == Phase.RUNNING:
        await acquire_all(parent.slots)  # its rate tokens were spent when it started
        parent.held = True
        if parent.lent > 0:  # a new child started while we waited: lend again
            parent.held = False
            release_all(parent.pools)


class _Deadline:
    """Cancels the current task after ``seconds`` and remembers that it did."""

    __slots__ = ("task", "handle", "fired")

    def __init__(self, seconds: float) -> None:
        self.task = asyncio.current_task()
        self.fired = False
        self.handle = asyncio.get_running_loop().call_later(seconds, self._fire)

    def _fire(self) -> None:
        self.fired = True
        self.task.cancel()

    def absorb(self) -> None:
        """Our own cancellation became a timeout: undo it so later awaits work (3.11+)."""
        uncancel = getattr(self.task, "uncancel", None)
        if uncancel is not None:
            uncancel()


async def _attempts(action: Action, args: tuple, kwargs: dict) -> Any:
    run = action.run
    spec = action.spec
    backend = get_backend(spec.backend)
    pools = action.pools
    cache = run.cache
    if cache is not None and spec.cache is None and not getattr(cache, "every_task", True):
        cache = None  # nothing to look up or record for this task
    if cache is not None:
        cached = cache.lookup(action, args, kwargs)
        if cached is not MISS:
            action.started_at = time.time()
            _finish(action, Phase.CACHED, None, cached)
            return cached
    while True:
        action.attempts += 1
        attempt = action.attempts
        error: BaseException | None = None
        if pools:
            if not try_acquire_all(pools):  # "waiting" only when it must: one event fewer per free start
                error = await _wait_for_slots(action, pools, attempt)
            if error is None:
                action.held = True
        started = time.time()
        deadline = None
        if error is None:
            if action.started_at is None:
                action.started_at = started
            run.transition(action, Phase.RUNNING, (args, kwargs) if attempt == 1 else None)
            if spec.timeout or spec.deadline:
                deadline = _Deadline(budget) if (budget := attempt_budget(action)) else None
        try:
            if error is not None:  # it waited longer than its max_queued_time: it never started
                raise error
            result = await backend.execute(action, args, kwargs)
        except asyncio.CancelledError:
            if deadline is None or not deadline.fired or run.aborting:
                _release(action)
                _finish(action, Phase.CANCELLED, None)
                raise
            deadline.absorb()
            error = timeout_error(action, attempt)
        except GeneratorExit:  # the coroutine is being closed, not failing
            _release(action)
            raise
        except Exception as caught:  # noqa: BLE001 - user errors keep their type
            error = caught
        except BaseException as caught:  # noqa: BLE001 - SystemExit & co. would stop the engine loop
            error = TaskExitError(spec.name, caught)
        else:
            if deadline is not None:
                deadline.handle.cancel()
            _release(action)
            if cache is not None:
                cache.store(action, args, kwargs, result)
            _finish(action, Phase.SUCCEEDED, None, result)
            return result
        finally:
            if deadline is not None:
                deadline.handle.cancel()
        _release(action)
        if attempt <= spec.retry.count and retryable(error) and not isinstance(error, TaskExitError):
            if action.history is None:
                action.history = []
            action.history.append(Attempt(attempt, started, time.time(), error))
            run.transition(action, Phase.QUEUED)
            try:
                await asyncio.sleep(spec.retry.delay(attempt))
            except asyncio.CancelledError:
                _finish(action, Phase.CANCELLED, None)
                raise
            continue
        if action.history is not None:
            action.history.append(Attempt(attempt, started, time.time(), error))
        phase = Phase.TIMED_OUT if isinstance(error, ActionTimeoutError) else Phase.FAILED
        error = flyte_error(error)
        _finish(action, phase, error)
        raise error


async def _wait_for_slots(action: Action, pools: tuple[SlotPool, ...], attempt: int) -> BaseException | None:
    """Acquire ``pools`` (all or nothing); the timeout error if ``max_queued_time`` passed first."""
    guard = _Deadline(budget) if (budget := queue_budget(action)) else None
    try:
        await acquire_all(pools, lambda pool: _waiting(action, pool))
    except asyncio.CancelledError:
        if guard is None or not guard.fired or action.run.aborting:
            _finish(action, Phase.CANCELLED, None)
            raise
        guard.absorb()
        return queue_timeout_error(action, attempt)  # acquire_all gave back whatever it had taken
    finally:
        if guard is not None:
            guard.handle.cancel()
    return None


def _waiting(action: Action, pool: SlotPool) -> None:
    """``action`` must wait for ``pool``: the phase (and its reason) change, one event each."""
    action.waiting_for = pool.name
    action.run.transition(action, Phase.WAITING)


def _release(action: Action) -> None:
    if action.held:
        action.held = False
        release_all(action.pools)


def _finish(action: Action, phase: Phase, error: BaseException | None, result: Any = None) -> None:
    output.announce_pending()
    action.ended_at = time.time()
    action.error = error
    if error is not None and not getattr(error, "_flyte_nb_noted", False):
        try:
            error._flyte_nb_noted = True  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - exceptions with __slots__
            pass
        add_note(error, f"in task `{action.spec.name}` (action {action.name} of run {action.run.name}, "
                        f"attempt {action.attempts} of {action.spec.retry.count + 1})")
    action.run.transition(action, phase, result)


# --------------------------------------------------------------------- runs
def start(run: RunState) -> None:
    """Begin ``run`` on the engine loop; returns at once."""
    output.install()
    context = contextvars.copy_context()
    context.run(_detach)
    run.context = context.copy()
    engine().submit(_drive(run), context, on_task=run.track)


def _detach() -> None:
    current_action.set(None)
    current_group.set(None)


async def _drive(run: RunState) -> None:
    run.idle = asyncio.Event()
    run.phase = "running"
    run.started_at = time.time()
    run.emit(EventKind.RUN_STARTED)
    root = run.new_action(run.driver, None, None, current_tags.get())
    outcome: BaseException | None = None
    result: Any = None
    try:
        result = await execute(root, run.args, run.kwargs)
    except asyncio.CancelledError:
        outcome = _aborted(run)
    except BaseException as error:  # noqa: BLE001 - reported through the run's future
        outcome = error
    if run.aborting and not isinstance(outcome, RunAbortedError):
        outcome = _aborted(run)
    await _unwind(run)
    run.ended_at = time.time()
    run.error = outcome
    run.phase = "succeeded" if outcome is None else ("aborted" if isinstance(outcome, RunAbortedError) else "failed")
    run.emit(EventKind.RUN_FINISHED)
    if outcome is None:
        run.done.set_result(result)
    else:
        run.done.set_exception(outcome)


def _aborted(run: RunState) -> RunAbortedError:
    return RunAbortedError(f"run {run.name} was aborted" + (f": {run.abort_reason}" if run.abort_reason else ""))


async def _unwind(run: RunState) -> None:
    """Once the driver is done, cancel actions still going (orphans, aborted work) and wait for them.

    Afterwards no action of the run runs and no slot is held, whatever the outcome.
    """
    if run.active:
        current = asyncio.current_task()
        for task in (*run.tasks, *run.live):
            if task is not current:
                task.cancel()
        run.idle.clear()
        try:
            await asyncio.wait_for(run.idle.wait(), _STRAGGLER_WAIT)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            pass
    await asyncio.sleep(0)  # done-callbacks of the last tasks (map slot releases) run first


def abort(run: RunState, reason: str | None = None) -> None:
    """Cancel every queued and running action of ``run``; thread-safe, returns at once."""

    def _abort() -> None:
        if run.done.done() or run.aborting:
            return
        run.aborting = True
        run.abort_reason = reason
        for task in (*run.tasks, *run.live):
            task.cancel()

    engine().call_soon(_abort)

