"""Reusable containers (``TaskEnvironment(reusable=ReusePolicy(replicas, idle_ttl, concurrency))``).

Long-lived containers per environment placement, each running ``concurrency`` ``flyte_nb.worker``
processes that talk to the kernel over a unix socket in the mounted folder (the one worker
protocol, ``link.Link``: task calls they make become child actions of the kernel), scaled between
the replica bounds and stopped after ``idle_ttl`` without work.
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

from ...engine.placement import Reuse
from ...errors import WorkerDiedError
from ..link import Link
from .daemon import LABEL
from .runtime import _BOOT, _IO

if TYPE_CHECKING:
    from . import DockerBackend


class _Slot:
    """One worker process inside a reusable container, on its link (the one worker protocol)."""

    def __init__(self, replica: _Replica, conn: Any) -> None:
        self.replica = replica
        self.link = Link(replica.pool.loop, conn, self._closed)
        self.pid: int | None = None
        self.dead = False

    def _closed(self, link: Link) -> None:
        self.dead = True
        self.replica.slots.discard(self)
        replica = self.replica
        link.fail_all(lambda action: f"the worker running task `{action.spec.name}` in container "
                                     f"{replica.short_id} {replica.died_how()}")

    def close(self) -> None:
        self.link.close()


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
                ready = await asyncio.wait_for(asyncio.shield(slot.link.ready), 60)
            except Exception:  # noqa: BLE001 - a broken worker: drop it, its loop respawns it
                slot.close()
                continue
            slot.pid = ready.pid
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
            # Success is "the worker is gone": it may have exited already, when its socket closed.
            script = f"kill -9 {int(pid)} 2>/dev/null; ! kill -0 {int(pid)} 2>/dev/null"
            try:
                killed = container.exec_run(["sh", "-c", script]).exit_code == 0
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

    def __init__(self, backend: DockerBackend, env_name: str, policy: Reuse, number: int) -> None:
        self.backend = backend
        self.loop = asyncio.get_running_loop()
        self.env_name = env_name
        self.low, self.high = policy.low, policy.high
        self.concurrency = policy.concurrency
        self.idle_ttl = policy.idle_ttl
        self.folder = backend.folder / f"reuse-{number}"
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

    async def checkout(self, config: dict[str, Any]) -> _Slot:
        waited = 0.0
        while True:
            for replica in self.replicas:
                while replica.idle:
                    slot = replica.idle.pop()
                    if not slot.dead and slot.link.alive():
                        replica.busy += 1
                        return slot
            starting = sum(len(r.slots) < self.concurrency for r in self.replicas)
            if len(self.replicas) < self.high + self._lent_replicas() and not starting:
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

    def _lent_replicas(self) -> int:
        """Replicas' worth of workers whose action only awaits its children: they do not count, so a
        driver and its children fit in one replica of one worker (an extra replica starts)."""
        lending = sum(any(r.action.lent for r in slot.link.running.values())
                      for replica in self.replicas for slot in replica.slots)
        return -(-lending // self.concurrency)

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
