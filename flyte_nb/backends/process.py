"""The process backend: actions in a pool of worker processes, code shipped by value.

Workers are plain ``python -m flyte_nb.backends.worker`` processes (never ``fork`` from the
threaded kernel), one socket each, reused across actions. A pool belongs to an environment and
is one more slot pool (``workers:ENV``, size = the environment's concurrency or the CPU count),
so an action waits for a worker in phase *waiting* like for any other limit. A timed-out or
aborted attempt kills its worker (a replacement starts on demand); a worker that dies fails its
attempt with ``WorkerDiedError`` and retries apply. Nested task calls made inside a worker run
inline in that worker: it has no engine, and shipping every child back would cost a round trip
for work that is usually small.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import signal
import socket
import subprocess
import sys
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from ..data.serialization import FORMAT, dumps, loads, ship_function, ship_inputs
from ..engine.output import record
from ..engine.slots import SlotPool
from ..errors import WorkerDiedError, add_note
from .base import Backend

if TYPE_CHECKING:
    from ..engine.action import Action
    from ..engine.spec import TaskSpec

_START_TIMEOUT = 60.0
_all_workers: set[Worker] = set()


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
    """One worker process and the reader thread that hands its messages to the engine loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, env_vars: dict[str, str]) -> None:
        self.loop = loop
        ours, theirs = socket.socketpair()
        env = dict(os.environ, **env_vars, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flyte_nb.backends.worker", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL,
        )
        theirs.close()
        self.conn = Connection(ours.detach())
        self.functions: set[str] = set()
        self.ready: asyncio.Future[None] = loop.create_future()
        self.action: Action | None = None
        self.reply: asyncio.Future[tuple[bool, bytes, str]] | None = None
        self.dead = False
        _all_workers.add(self)
        loop.add_reader(self.conn.fileno(), self._readable)

    @property
    def pid(self) -> int:
        return self.process.pid

    def _readable(self) -> None:
        """The socket has data: read every complete message waiting (on the engine loop, no thread hop)."""
        try:
            while self.conn.poll():
                self._on_message(loads(self.conn.recv_bytes()))
        except (EOFError, OSError):
            self.loop.remove_reader(self.conn.fileno())
            self.conn.close()
            try:
                self.loop.run_in_executor(None, self._reap)
            except RuntimeError:  # the interpreter is shutting down: reap without waiting
                self.dead = True
                self.process.poll()

    def _reap(self) -> None:
        code = self.process.wait()  # no zombie
        self.loop.call_soon_threadsafe(self._on_exit, code)

    # ------------------------------------------------------------- engine loop
    def _on_message(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "ready":
            _, _pid, version, fmt = message
            if fmt != FORMAT or tuple(version) != tuple(sys.version_info[:2]):
                self.ready.set_exception(WorkerDiedError(f"worker speaks format {fmt} on Python {version}, "
                                                         f"the kernel {FORMAT} on {sys.version_info[:2]}"))
                self.kill()
            elif not self.ready.done():
                self.ready.set_result(None)
        elif kind == "output":
            _, _action, stream, text = message
            if self.action is not None:
                record(self.action, stream, text)
        elif kind == "done" and self.reply is not None and not self.reply.done():
            self.reply.set_result(message[2:])

    def _on_exit(self, code: int) -> None:
        self.dead = True
        _all_workers.discard(self)
        error = WorkerDiedError(f"worker process {self.pid} {_describe_exit(code)}")
        if not self.ready.done():
            self.ready.set_exception(error)
        if self.reply is not None and not self.reply.done():
            name = self.action.spec.name if self.action is not None else "?"
            self.reply.set_exception(WorkerDiedError(f"the worker running task `{name}` ({self.pid}) {_describe_exit(code)}"))

    def start(self, action: Action, key: str, function: bytes, inputs: bytes) -> asyncio.Future[tuple[bool, bytes, str]]:
        self.action = action
        self.reply = self.loop.create_future()
        payload = None if key in self.functions else function
        self.conn.send_bytes(dumps(("run", action.name, key, payload, inputs)))
        self.functions.add(key)
        return self.reply

    def kill(self) -> None:
        self.dead = True
        if self.process.poll() is None:
            self.process.kill()


class WorkerPool:
    """The workers of one environment, behind a slot pool of the same size."""

    def __init__(self, name: str, size: int, env_vars: dict[str, str]) -> None:
        self.slots = SlotPool(size, f"workers:{name}")
        self.env_vars = env_vars
        self.idle: list[Worker] = []

    async def checkout(self) -> Worker:
        """A live worker; the caller already holds one of ``slots``."""
        while self.idle:
            worker = self.idle.pop()
            if not worker.dead:
                return worker
        worker = Worker(asyncio.get_running_loop(), self.env_vars)
        try:
            await asyncio.wait_for(asyncio.shield(worker.ready), _START_TIMEOUT)
        except BaseException:
            worker.kill()
            raise
        return worker

    def checkin(self, worker: Worker) -> None:
        worker.action = worker.reply = None
        if not worker.dead:
            self.idle.append(worker)

    def shutdown(self) -> None:
        for worker in self.idle:
            worker.kill()
        self.idle.clear()


class ProcessBackend(Backend):
    name = "process"

    def __init__(self) -> None:
        self._pools: dict[str, WorkerPool] = {}
        self._functions: dict[int, tuple[str, bytes]] = {}

    def _pool(self, spec: TaskSpec) -> WorkerPool:
        pool = self._pools.get(spec.env_name)
        if pool is None:
            environment = spec.extras.get("environment")
            concurrency = getattr(environment, "concurrency", None)
            size = concurrency or os.cpu_count() or 1
            pool = self._pools[spec.env_name] = WorkerPool(spec.env_name, size, dict(getattr(environment, "env_vars", {})))
        return pool

    def pools(self, spec: TaskSpec) -> tuple[SlotPool, ...]:
        return (self._pool(spec).slots,)

    async def execute(self, action: Action, args: tuple, kwargs: dict) -> Any:
        spec = action.spec
        shipped = self._functions.get(id(spec))
        if shipped is None:
            shipped = self._functions[id(spec)] = ship_function(spec.func, spec.name)
        inputs = ship_inputs(args, kwargs, spec.name)
        pool = self._pool(spec)
        worker = await pool.checkout()
        try:
            ok, payload, remote_traceback = await worker.start(action, shipped[0], shipped[1], inputs)
        except asyncio.CancelledError:
            worker.kill()  # a timeout or an abort stops the attempt for real
            raise
        finally:
            pool.checkin(worker)
        if ok:
            return loads(payload)
        error = loads(payload)
        if remote_traceback:
            add_note(error, f"remote traceback (worker {worker.pid}):\n{remote_traceback.rstrip()}")
        raise error

    async def shutdown(self) -> None:
        for pool in self._pools.values():
            pool.shutdown()


@atexit.register
def _kill_all() -> None:
    """No worker outlives the kernel (they would also exit on their own when the socket closes)."""
    for worker in tuple(_all_workers):
        worker.kill()
