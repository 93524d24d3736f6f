"""Run attempts inside a worker, ship their outcomes, and route the task calls they make.

One ``Runner`` per worker process (process pool, container, Dask worker). It owns an asyncio loop
on its own thread: async bodies run there, *driven* (``engine.bridge``) so that a sync task call
or a sync ``flyte_nb.map`` inside async code waits without blocking the loop, exactly as in the
kernel. Sync bodies run on the thread that called :meth:`Runner.execute`.

A task call inside an attempt is never a local function call: it is a ``CallChild`` message to
the kernel, whose engine makes it a child action (slots, throttles, retries, timeouts, events,
store) and answers with a ``ChildResult``. Many calls may be outstanding at once (``gather``,
``map``), so semaphores and map concurrency behave as in the kernel. A ``RateLimiter`` or a
kernel's ``Semaphore`` used in the body is the kernel's one budget: ``acquire_limit`` asks the
kernel for it (``Acquire``), as a call.

Everything an attempt started on the loop (gathered children, fire-and-forget tasks) is
cancelled when the attempt ends, even after ``SystemExit``: the next attempt starts clean.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextvars
import inspect
import itertools
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from ..data.pickling import by_value, loads
from ..data.serialization import ship_error, ship_inputs, ship_output
from ..engine.attempt_state import AttemptInfo, current_custom_context, current_remote
from ..engine.bridge import await_only, drive, in_driven_code
from ..engine.context import current_channel
from ..errors import user_traceback
from .protocol import Acquire, CallChild, CancelChild, ChildResult, Message, Note, Outcome, Release, Run, Settle, unwrap

_MAX_FUNCTIONS = 256


class _Attempt:
    """One attempt running in this worker: its routing id and the loop tasks it started."""

    __slots__ = ("id", "tasks", "calling", "notes", "used_loop")

    def __init__(self, attempt_id: str) -> None:
        self.id = attempt_id
        self.notes = 0  # notes sent so far (their ``seq``)
        self.used_loop = False  # something of it was started on the loop: its end must cancel what is left there
        self.tasks: set[asyncio.Task[Any]] = set()
        self.calling: concurrent.futures.Future[None] = concurrent.futures.Future()  # set at its first child call


current_attempt: contextvars.ContextVar[_Attempt | None] = contextvars.ContextVar("flyte_nb.attempt", default=None)


class Runner:
    """Executes ``Run`` messages; ``send`` (thread-safe) carries messages to the kernel."""

    def __init__(self, send: Callable[[Message], None], where: str) -> None:
        self.send = send
        self.where = where
        self.functions: collections.OrderedDict[str, Any] = collections.OrderedDict()
        self.running: dict[str, _Attempt] = {}
        self.calls: dict[int, asyncio.Future[Outcome]] = {}
        self.numbers = itertools.count(1)
        self.sent: dict[str, bytes] = {}  # task token → task bytes the kernel already has
        self.on_children: Callable[[], None] | None = None
        """Called on the attempt's own thread once it waits on children (Dask: ``secede``, so that a
        parent that only awaits children does not hold a worker thread)."""
        self.loop = asyncio.new_event_loop()
        self.loop.set_task_factory(self._task)
        started = threading.Event()
        threading.Thread(target=self._serve, args=(started,), name="flyte_nb-worker-loop", daemon=True).start()
        started.wait()

    # ------------------------------------------------------------- the loop
    def _serve(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(started.set)
        while True:
            try:
                self.loop.run_forever()
                return
            except BaseException:  # noqa: BLE001 - SystemExit/KeyboardInterrupt of one task: the loop goes on
                continue

    def _task(self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **options: Any) -> asyncio.Task[Any]:
        task = asyncio.Task(drive(coro, contextvars.copy_context()), loop=loop, **options)
        attempt = current_attempt.get()
        if attempt is not None:
            attempt.tasks.add(task)
            task.add_done_callback(attempt.tasks.discard)
        return task

    def on_loop(self, coro: Coroutine[Any, Any, Any], context: contextvars.Context | None = None) -> concurrent.futures.Future[Any]:
        """Start ``coro`` on the loop in ``context`` (default: a copy of the caller's)."""
        context = context or contextvars.copy_context()
        attempt = context.get(current_attempt)
        if attempt is not None:
            attempt.used_loop = True
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def start() -> None:
            task = context.run(self.loop.create_task, coro)
            task.add_done_callback(lambda t: _copy(t, future))
            future.add_done_callback(lambda f: f.cancelled() and self.loop.call_soon_threadsafe(task.cancel))

        self.loop.call_soon_threadsafe(start)
        return future

    def block(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Wait for ``coro`` from sync code: driven code on the loop suspends, a thread blocks."""
        if in_driven_code():
            return await_only(coro)
        future = self.on_loop(coro)
        try:
            attempt = current_attempt.get()
            if self.on_children is not None and attempt is not None and _mark_calling(attempt):
                self.on_children()
            return future.result()
        except BaseException:
            future.cancel()
            raise

    # ------------------------------------------------------------ attempts
    def load(self, key: str, data: bytes | None) -> Any:
        """The function of digest ``key`` (kept by that digest, so a redefined task never gets an old one)."""
        return self._function(key, data)

    def _function(self, key: str, data: bytes | None) -> Any:
        func = self.functions.get(key)
        if func is None:
            if data is None:
                raise RuntimeError(f"worker {self.where} was not sent function {key}")
            func = self.functions[key] = loads(data)
            if len(self.functions) > _MAX_FUNCTIONS:
                self.functions.popitem(last=False)
        else:
            self.functions.move_to_end(key)
        return func

    def execute(self, run: Run) -> Outcome:
        """Run one attempt to its end (blocking) and return its outcome; never raises."""
        attempt = _Attempt(run.attempt)
        self.running[run.attempt] = attempt
        context = contextvars.copy_context()
        context.run(_enter, attempt, self, run.context)
        name = "task"
        try:
            func = self._function(run.key, run.function)
            name = getattr(func, "__name__", name)
            args, kwargs = loads(run.inputs)
            if inspect.iscoroutinefunction(func):
                result = self._await(func(*args, **kwargs), context)
            else:
                result = context.run(func, *args, **kwargs)
                if inspect.isawaitable(result):
                    result = self._await(result, context)
            return Outcome(True, ship_output(result, name), "", self.where)
        except BaseException as error:  # noqa: BLE001 - every failure goes back to the kernel
            try:
                return Outcome(False, ship_error(error), user_traceback(error), self.where)
            except BaseException as shipping:  # noqa: BLE001
                return Outcome(False, ship_error(RuntimeError(f"{type(error).__name__}: {error}")), str(shipping), self.where)
        finally:
            self.running.pop(run.attempt, None)
            if attempt.used_loop:  # a plain sync body never woke the loop: waking it now would only delay its Done
                self.loop.call_soon_threadsafe(_cancel_all, attempt)

    def _await(self, awaitable: Any, context: contextvars.Context) -> Any:
        future = self.on_loop(_awaited(awaitable), context)
        try:
            if self.on_children is not None:
                attempt = context.get(current_attempt)
                done, _ = concurrent.futures.wait((future, attempt.calling), return_when=concurrent.futures.FIRST_COMPLETED)
                if future not in done:
                    self.on_children()
            return future.result()
        except BaseException:
            future.cancel()
            raise

    # ---------------------------------------------------------- child calls
    async def call(self, task: Any, args: tuple, kwargs: dict, group: str | None, tags: tuple[str, ...],
                   index: int | None = None, attempt: _Attempt | None = None,
                   limit: tuple[str, int] | None = None, total: int | None = None, rate: Any = None) -> Any:
        """A task call made inside an attempt: the kernel runs it as a child action."""
        attempt = attempt or current_attempt.get()
        if attempt is None:
            raise RuntimeError("a task call inside a worker, outside any attempt")
        number = next(self.numbers)
        token = getattr(task, "token", None)
        data = None
        if token is None or token not in self.sent:
            data = by_value(task)
            if token is not None:
                self.sent[token] = data
        inputs = ship_inputs(args, kwargs, task.name)
        custom = tuple(current_custom_context.get().items())
        call = CallChild(attempt.id, number, token, data, inputs, group, tags, index, limit, total, rate, custom)
        return unwrap(await self._ask(call, attempt), "kernel")

    async def _ask(self, message: CallChild | Acquire, attempt: _Attempt | None = None) -> Outcome:
        """Send a request the kernel answers with a ``ChildResult``; cancelled, withdraw it (``CancelChild``)."""
        reply = self.loop.create_future()
        self.calls[message.call] = reply
        try:
            self.send(message)
            if attempt is not None:
                _mark_calling(attempt)
            try:
                return await reply
            except asyncio.CancelledError:
                self.send(CancelChild(message.attempt, message.call))
                raise
        finally:
            self.calls.pop(message.call, None)

    def call_sync(self, task: Any, args: tuple, kwargs: dict, group: str | None, tags: tuple[str, ...]) -> Any:
        return self.block(self.call(task, args, kwargs, group, tags, attempt=current_attempt.get()))

    # ---------------------------------------------------------------- limits
    async def acquire_limit(self, limit: Any, cost: float = 1) -> tuple[str, int]:
        """Wait until the kernel grants ``cost`` units of ``limit`` from its budget; the grant's ticket.

        Cancelled while waiting, the request is withdrawn (a grant already on its way is given back).
        """
        attempt = current_attempt.get()
        if attempt is None:
            raise RuntimeError("a rate limiter or semaphore used inside a worker, outside any attempt")
        number = next(self.numbers)
        unwrap(await self._ask(Acquire(attempt.id, number, by_value(limit), cost)), "kernel")
        return attempt.id, number

    def release_limit(self, ticket: tuple[str, int]) -> None:
        """Give back the semaphore slot of grant ``ticket`` (any thread)."""
        self.send(Release(*ticket))

    def settle_limit(self, ticket: tuple[str, int], limit: Any, charged: float, actual: float) -> None:
        """Grant ``ticket`` of ``charged`` units really used ``actual`` (any thread)."""
        self.send(Settle(ticket[0], by_value(limit), charged, actual))

    def note(self, kind: str, payload: bytes) -> None:
        """What the running attempt keeps for its run (``engine.attempt_state``) goes to the kernel."""
        attempt = current_attempt.get()
        if attempt is None:
            running = tuple(self.running.values())  # a thread the body started: the only attempt, if one
            if len(running) != 1:
                return
            attempt = running[0]
        attempt.notes += 1
        self.send(Note(attempt.id, kind, payload, attempt.notes))

    def resolve(self, message: ChildResult) -> None:
        """A child's outcome arrived (any thread)."""
        self.loop.call_soon_threadsafe(self.resolve_here, message)

    def resolve_here(self, message: ChildResult) -> None:
        """A child's outcome arrived (on the loop)."""
        reply = self.calls.get(message.call)
        if reply is not None and not reply.done():
            reply.set_result(message.outcome)


def _mark_calling(attempt: _Attempt) -> bool:
    """Note that ``attempt`` made a child call; True the first time."""
    if attempt.calling.done():  # the usual case: cheaper than the error (whose message formats the future)
        return False
    try:
        attempt.calling.set_result(None)
    except concurrent.futures.InvalidStateError:
        return False
    return True


def _enter(attempt: _Attempt, runner: Runner, info: AttemptInfo | None) -> None:
    current_attempt.set(attempt)
    current_channel.set(runner)
    current_remote.set(info)
    current_custom_context.set(dict(info.custom) if info is not None else {})


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _cancel_all(attempt: _Attempt) -> None:
    for task in tuple(attempt.tasks):
        task.cancel()


def _copy(task: asyncio.Task[Any], future: concurrent.futures.Future[Any]) -> None:
    if future.done():
        return
    if task.cancelled():
        future.cancel()
    elif task.exception() is not None:
        future.set_exception(task.exception())
    else:
        future.set_result(task.result())
