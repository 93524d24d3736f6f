"""The process backend: actions in a pool of worker processes, code shipped by value.

Workers are plain ``python -m flyte_nb.worker`` processes (never ``fork`` from the threaded
kernel), one socket each (``link.Link``, the one worker protocol), reused across actions. A pool
belongs to an environment's *placement* (its current definition: re-running the cell with new
``env_vars`` or ``concurrency`` gets a new pool) and is one more slot pool (``workers:ENV`` of the
CPU count's size, or the environment's own ``env:ENV`` pool when it sets ``concurrency``: one limit,
one pool), so an action waits for a worker in phase *waiting* like for any other limit.

Task calls made inside a worker come back to the kernel as child actions (see ``link``). While
a parent only awaits its children it lends its slots, including its ``workers:`` slot: its
process is not counted as busy, and a child that finds no idle worker gets a new one, so a
``concurrency=1`` environment can hold a driver and its children.

A timed-out or aborted attempt kills its worker (a replacement starts on demand); a worker that
dies fails its attempt with ``WorkerDiedError`` and retries apply. Workers die with the kernel,
busy or idle (``PR_SET_PDEATHSIG`` on Linux, and the socket closing everywhere).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import weakref
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from ..data.serialization import ship_function, ship_inputs
from ..engine.placement import Placement
from ..engine.slots import SlotPool
from ..worker.protocol import Exit, unwrap
from ..engine.backend import Backend
from .link import Link, attempt_id

if TYPE_CHECKING:
    from ..engine.action import Action
    from ..engine.spec import TaskSpec

_START_TIMEOUT = 60.0


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


class Worker:
    """One worker process and its link, read on the engine loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, env_vars: dict[str, str], alive: set[Worker]) -> None:
        self.loop = loop
        self._alive = alive
        ours, theirs = socket.socketpair()
        env = dict(os.environ, **env_vars, PYTHONPATH=os.pathsep.join(p for p in sys.path if p),
                   FLYTE_NB_KERNEL_PID=str(os.getpid()))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flyte_nb.worker", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL,
        )
        theirs.close()
        self.link = Link(loop, Connection(ours.detach()), self._closed)
        self.dead = False
        alive.add(self)

    @property
    def pid(self) -> int:
        return self.process.pid

    def _closed(self, link: Link) -> None:
        try:
            self.loop.run_in_executor(None, self._reap)
        except RuntimeError:  # the interpreter is shutting down: reap without waiting
            self.dead = True
            self.process.poll()

    def _reap(self) -> None:
        code = self.process.wait()  # no zombie
        self.loop.call_soon_threadsafe(self._on_exit, code)

    def _on_exit(self, code: int) -> None:
        self.dead = True
        self._alive.discard(self)
        how = _describe_exit(code)
        self.link.fail_all(lambda action: f"the worker running task `{action.spec.name}` ({self.pid}) {how}")

    def kill(self) -> None:
        self.dead = True
        if self.process.poll() is None:
            self.process.kill()


class WorkerPool:
    """The workers of one placement, behind a slot pool of the same size."""

    def __init__(self, placement: Placement, alive: set[Worker], slots: SlotPool | None = None) -> None:
        self.alive = alive
        size = placement.concurrency or os.cpu_count() or 1
        self.slots = slots or SlotPool(size, f"workers:{placement.env_name}")
        self.env_vars = placement.variables
        self.idle: list[Worker] = []
        self.retired = False

    async def checkout(self) -> Worker:
        """A live worker; the caller already holds one of ``slots`` (or its parent lent one)."""
        while self.idle:
            worker = self.idle.pop()
            if not worker.dead and worker.link.alive():
                return worker
        worker = Worker(asyncio.get_running_loop(), self.env_vars, self.alive)
        try:
            await asyncio.wait_for(asyncio.shield(worker.link.ready), _START_TIMEOUT)
        except BaseException:
            worker.kill()
            raise
        return worker

    def checkin(self, worker: Worker) -> None:
        if worker.dead:
            return
        if self.retired:
            worker.link.send(Exit())
            worker.link.close()
        else:
            self.idle.append(worker)

    def shutdown(self) -> None:
        self.retired = True
        for worker in self.idle:
            worker.kill()
        self.idle.clear()


class ProcessBackend(Backend):
    name = "process"

    def __init__(self) -> None:
        self._pools: dict[Placement, WorkerPool] = {}
        self._current: dict[str, Placement] = {}  # environment name → its current placement
        self._functions: weakref.WeakKeyDictionary[TaskSpec, tuple[str, bytes]] = weakref.WeakKeyDictionary()
        self.workers: set[Worker] = set()  # every live worker process, idle or busy

    def _pool(self, spec: TaskSpec) -> WorkerPool:
        placement = spec.placement or Placement(spec.env_name)
        pool = self._pools.get(placement)
        if pool is None:
            same = spec.env_pool if spec.env_pool is not None and spec.env_pool.capacity == placement.concurrency else None
            pool = self._pools[placement] = WorkerPool(placement, self.workers, same)  # one pool for one limit
            old = self._current.get(placement.env_name)
            if old is not None and old != placement:  # the environment was redefined: retire its old workers
                self._pools.pop(old).shutdown()
            self._current[placement.env_name] = placement
        return pool

    def pools(self, spec: TaskSpec) -> tuple[SlotPool, ...]:
        return (self._pool(spec).slots,)

    async def execute(self, action: Action, args: tuple, kwargs: dict) -> Any:
        spec = action.spec
        shipped = self._functions.get(spec)
        if shipped is None:
            shipped = self._functions[spec] = ship_function(spec.func, spec.name)
        inputs = ship_inputs(args, kwargs, spec.name)
        pool = self._pool(spec)
        worker = await pool.checkout()
        attempt = attempt_id(action)
        try:
            outcome = await worker.link.start(action, attempt, shipped[0], shipped[1], inputs)
        except asyncio.CancelledError:
            worker.kill()  # a timeout or an abort stops the attempt for real
            raise
        finally:
            worker.link.finish(attempt)  # children it still waits for are cancelled
            pool.checkin(worker)
        return unwrap(outcome, f"worker {worker.pid}")

    async def shutdown(self) -> None:
        """No worker outlives the kernel (they also die on their own when the kernel or its socket goes)."""
        for pool in self._pools.values():
            pool.shutdown()
        for worker in tuple(self.workers):
            worker.kill()
