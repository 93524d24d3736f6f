"""Reusable containers (``TaskEnvironment(reusable=ReusePolicy(replicas, idle_ttl, concurrency))``).

Long-lived containers per environment, each running ``concurrency`` ``flyte_nb.backends.worker``
processes that talk to the kernel over a unix socket in the mounted folder (the process backend's
protocol), scaled between the replica bounds and stopped after ``idle_ttl`` without work.
"""

from __future__ import annotations

import asyncio
import shlex
import socket
import sys
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import docker.errors

from ...data.serialization import FORMAT, dumps, loads
from ...engine.output import record
from ...errors import WorkerDiedError
from .daemon import LABEL
from .runtime import _BOOT, _IO

if TYPE_CHECKING:
    from ...engine.action import Action
    from ...engine.spec import TaskSpec
    from . import DockerBackend


class _Slot:
    """One worker process inside a reusable container, on its socket connection."""

    def __init__(self, replica: _Replica, conn: Any) -> None:
        self.replica = replica
        self.conn = conn
        self.loop = replica.pool.loop
        self.pid: int | None = None
        self.functions: set[str] = set()
        self.ready: asyncio.Future[None] = self.loop.create_future()
        self.action: Action | None = None
        self.reply: asyncio.Future[tuple[bool, bytes, str]] | None = None
        self.dead = False
        self.loop.add_reader(conn.fileno(), self._readable)

    def _readable(self) -> None:
        try:
            while self.conn.poll():
                self._on_message(loads(self.conn.recv_bytes()))
        except (EOFError, OSError):
            self.close()

    def _on_message(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "ready":
            _, self.pid, version, fmt = message
            if fmt != FORMAT or tuple(version) != tuple(sys.version_info[:2]):
                self.ready.set_exception(WorkerDiedError(f"worker speaks format {fmt} on Python {version}"))
            elif not self.ready.done():
                self.ready.set_result(None)
        elif kind == "output" and self.action is not None:
            record(self.action, message[2], message[3])
        elif kind == "done" and self.reply is not None and not self.reply.done():
            self.reply.set_result(message[2:])

    def start(self, action: Action, key: str, function: bytes, inputs: bytes) -> asyncio.Future:
        self.action = action
        self.reply = self.loop.create_future()
        self.conn.send_bytes(dumps(("run", action.name, key, None if key in self.functions else function, inputs)))
        self.functions.add(key)
        return self.reply

    def close(self) -> None:
        if self.dead:
            return
        self.dead = True
        try:
            self.loop.remove_reader(self.conn.fileno())
        except (ValueError, OSError):
            pass
        self.conn.close()
        self.replica.slots.discard(self)
        if not self.ready.done():
            self.ready.set_exception(WorkerDiedError("the worker closed its connection before it was ready"))
        if self.reply is not None and not self.reply.done():
            name = self.action.spec.name if self.action is not None else "?"
            self.reply.set_exception(WorkerDiedError(
                f"the worker running task `{name}` in container {self.replica.short_id} {self.replica.died_how()}"))


class _Replica:
    """One long-lived container with ``concurrency`` worker processes, each reconnecting if killed."""

    def __init__(self, pool: _ReusePool, number: int) -> None:
        self.pool = pool
        self.number = number
        self.path = pool.folder / f"r{number}.sock"
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(self.path))
        self.listener.listen(64)
        self.listener.setblocking(False)
        self.container: Any = None
        self.short_id = "?"
        self.slots: set[_Slot] = set()
        self.idle: list[_Slot] = []
        self.busy = 0
        self.last_used = time.monotonic()
        self.stopped = False
        self.accepting = pool.loop.create_task(self._accept())

    def command(self) -> list[str]:
        socket_path = f"{_IO}/{self.path.name}"
        worker = f"until python3 -c {shlex.quote(_BOOT)} --connect {socket_path}; do :; done"
        loops = " & ".join([f"({worker})"] * self.pool.concurrency)
        return ["sh", "-c", f"{loops} & wait"]

    async def _accept(self) -> None:
        from multiprocessing.connection import Connection

        loop = self.pool.loop
        while not self.stopped:
            try:
                sock, _ = await loop.sock_accept(self.listener)
            except (OSError, asyncio.CancelledError):
                return
            sock.setblocking(True)
            slot = _Slot(self, Connection(sock.detach()))
            self.slots.add(slot)
            try:
                await asyncio.wait_for(asyncio.shield(slot.ready), 60)
            except Exception:  # noqa: BLE001 - a broken worker: drop it, its loop respawns it
                slot.close()
                continue
            self.idle.append(slot)
            self.pool.slot_ready()

    def died_how(self) -> str:
        return "was stopped" if self.stopped else "died"

    def kill_slot(self, slot: _Slot) -> None:
        """Stop a timed-out/aborted action: kill its worker process (the container's loop starts a new one)."""
        slot.close()
        container, pid = self.container, slot.pid

        def kill() -> None:
            # The shell's builtin: minimal images have no kill binary (exec_run reports 127, it does not raise).
            try:
                killed = container.exec_run(["sh", "-c", f"kill -9 {int(pid)}"]).exit_code == 0
            except Exception:  # noqa: BLE001 - the daemon refused: handled below
                killed = False
            if not killed:  # a worker we cannot kill would run on unseen: stop the whole container instead
                self.pool.backend._remove_quietly(container)

        if container is not None and pid:
            threading.Thread(target=kill, daemon=True).start()

    def stop(self) -> None:
        self.stopped = True
        self.accepting.cancel()
        for slot in tuple(self.slots):
            slot.close()
        self.listener.close()
        try:
            self.path.unlink()
        except OSError:
            pass
        if self.container is not None:
            container, self.container = self.container, None
            threading.Thread(target=self.pool.backend._remove_quietly, args=(container,), daemon=True).start()


_RECHECK = 2.0  # seconds between checks for dead replicas while actions wait for a worker
_START_LIMIT = 120.0


class _ReusePool:
    """The reusable containers of one environment, scaled between ``replicas`` bounds."""

    def __init__(self, backend: DockerBackend, spec: TaskSpec, policy: Any) -> None:
        from ...api.policies import seconds_from

        self.backend = backend
        self.loop = asyncio.get_running_loop()
        self.env_name = spec.env_name
        self.low, self.high = policy.replicas if isinstance(policy.replicas, tuple) else (policy.replicas,) * 2
        self.concurrency = policy.concurrency
        self.idle_ttl = seconds_from(policy.idle_ttl, "idle_ttl") if policy.idle_ttl is not None else None
        self.folder = backend.folder / f"reuse-{spec.env_name}"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.replicas: list[_Replica] = []
        self.numbers = 0
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.reaper = self.loop.create_task(self._reap()) if self.idle_ttl else None

    def slot_ready(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def checkout(self, spec: TaskSpec, config: dict[str, Any]) -> _Slot:
        waited = 0.0
        while True:
            for replica in self.replicas:
                while replica.idle:
                    slot = replica.idle.pop()
                    if not slot.dead:
                        replica.busy += 1
                        return slot
            starting = sum(len(r.slots) < self.concurrency for r in self.replicas)
            if len(self.replicas) < self.high and not starting:
                await self._start(config)
            waiter = self.loop.create_future()
            self.waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, _RECHECK)
            except asyncio.TimeoutError:
                waited += _RECHECK
                if waited >= _START_LIMIT:
                    raise WorkerDiedError(f"no worker container of environment `{self.env_name}` came up "
                                          f"within {_START_LIMIT:g} s") from None
                await self._forget_exited()

    async def _forget_exited(self) -> None:
        """Drop replicas whose container is gone (killed, out of memory) so that new ones can start."""
        for replica in list(self.replicas):
            container = replica.container
            if container is None or any(not slot.dead for slot in replica.slots):
                continue
            try:
                await self.loop.run_in_executor(self.backend.executor, container.reload)
                gone = container.status in ("exited", "dead", "removing")
            except docker.errors.NotFound:  # the daemon no longer knows it: gone too
                gone = True
            except Exception:  # noqa: BLE001 - unsure (a busy daemon): keep it, look again later
                gone = False
            if gone and replica in self.replicas:
                self.replicas.remove(replica)
                replica.stop()

    async def _start(self, config: dict[str, Any]) -> None:
        self.numbers += 1
        replica = _Replica(self, self.numbers)
        self.replicas.append(replica)
        config = dict(config, command=replica.command(),
                      labels=dict(config["labels"], **{f"{LABEL}.replica": str(replica.number)}))
        try:
            container = await self.loop.run_in_executor(self.backend.executor, self.backend._run_container, config)
        except BaseException:
            self.replicas.remove(replica)
            replica.stop()
            raise
        replica.container, replica.short_id = container, container.short_id
        if replica.stopped:
            self.backend._remove_quietly(container)

    def checkin(self, slot: _Slot) -> None:
        replica = slot.replica
        replica.busy -= 1
        replica.last_used = time.monotonic()
        slot.action = slot.reply = None
        if not slot.dead and not replica.stopped:
            replica.idle.append(slot)
            self.slot_ready()

    async def _reap(self) -> None:
        assert self.idle_ttl is not None
        while True:
            await asyncio.sleep(max(self.idle_ttl / 4, 0.05))
            now = time.monotonic()
            if any(not w.done() for w in self.waiters):
                continue  # actions are waiting for a worker (one restarting after a timeout, say)
            for replica in list(self.replicas):
                if len(self.replicas) <= self.low:
                    break
                if replica.busy == 0 and now - replica.last_used >= self.idle_ttl and replica.container is not None:
                    self.replicas.remove(replica)
                    replica.stop()
                    self.slot_ready()  # a waiter that arrived meanwhile starts a new replica

    def shutdown(self) -> None:
        if self.reaper is not None:
            self.reaper.cancel()
        for replica in self.replicas:
            replica.stop()
        self.replicas.clear()
