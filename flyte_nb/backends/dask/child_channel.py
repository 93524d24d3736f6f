"""Kernel side of the child-call channel on Dask, through the scheduler.

A body on a Dask worker that calls a task sends ``CallChild`` as a worker event on this kernel's
calls topic (the scheduler relays it to the client); the kernel's engine makes it a child action
of the attempt's action (``controller.call``: slots, throttles, retries, timeouts, events, store)
and sends the ``ChildResult`` back with ``client.run`` on that one worker. The worker never
connects to the kernel. Limits a body uses (``Acquire``, ``Release``, ``Settle``) travel the same
way and draw on the kernel's budget (``backends.limits``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ...engine.attempt_state import receive_note
from ...engine.run_state import GroupStats
from ...worker.protocol import Acquire, CallChild, CancelChild, ChildResult, Note, Release, Settle, decode, encode
from .. import limits as kernel_limits
from ..child_calls import child_outcome
from .on_worker import deliver

if TYPE_CHECKING:
    from ...engine.action import Action
    from . import _Connection


class DaskChildren:
    """Child calls of the attempts this kernel runs on the cluster, keyed by Dask key (= attempt id)."""

    def __init__(self) -> None:
        self.parents: dict[str, Action] = {}
        self.children: dict[str, dict[int, asyncio.Task[Any]]] = {}
        self.tasks: dict[str, Any] = {}  # task tokens sent by value → the task
        self.maps: dict[str, dict[str, GroupStats]] = {}  # attempt → the groups of its maps
        self.held: dict[str, dict[int, kernel_limits.KernelLimit]] = {}  # attempt → semaphore slots its body holds
        self.noted: dict[str, set[int]] = {}  # attempt → seq of the notes already handled
        self.connection: _Connection | None = None

    def begin(self, key: str, action: Action) -> None:
        self.parents[key] = action

    def end(self, key: str) -> None:
        """The attempt is over: cancel the children it still waits for."""
        self.parents.pop(key, None)
        self.maps.pop(key, None)
        self.noted.pop(key, None)
        for task in tuple(self.children.pop(key, {}).values()):
            task.cancel()
        kernel_limits.release_all(self.held.pop(key, {}))

    def receive(self, address: str, data: bytes) -> None:
        """Engine loop: a message from the body running ``key`` on ``address``."""
        message = decode(data)
        if isinstance(message, CallChild):
            parent = self.parents.get(message.attempt)
            if parent is not None:
                task = asyncio.get_running_loop().create_task(self._child(parent, address, message))
                self.children.setdefault(message.attempt, {})[message.call] = task
        elif isinstance(message, Note):
            self.note(message)
        elif isinstance(message, CancelChild):
            task = self.children.get(message.attempt, {}).get(message.call)
            if task is not None:
                task.cancel()
            else:  # an acquisition granted as the body gave up on it
                kernel_limits.release(self.held.get(message.attempt, {}), message.call)
        elif isinstance(message, Acquire):
            parent = self.parents.get(message.attempt)
            if parent is not None:
                task = asyncio.get_running_loop().create_task(self._acquire(parent, address, message))
                self.children.setdefault(message.attempt, {})[message.call] = task
        elif isinstance(message, Release):
            kernel_limits.release(self.held.get(message.attempt, {}), message.call)
        elif isinstance(message, Settle):
            if message.attempt in self.parents:
                kernel_limits.settle(message)

    def note(self, message: Note) -> None:
        """A note from a body, by event or with its result (whichever comes first): handled once."""
        parent = self.parents.get(message.attempt)
        seen = self.noted.setdefault(message.attempt, set())
        if parent is not None and message.seq not in seen:
            seen.add(message.seq)
            receive_note(parent, message.kind, message.payload)

    async def _child(self, parent: Action, address: str, message: CallChild) -> None:
        maps = self.maps.setdefault(message.attempt, {})
        try:
            outcome = await child_outcome(parent, message, self.tasks, maps)
        finally:
            self.children.get(message.attempt, {}).pop(message.call, None)
        self._send(address, ChildResult(message.call, outcome))

    async def _acquire(self, parent: Action, address: str, message: Acquire) -> None:
        held = self.held.setdefault(message.attempt, {})
        try:
            outcome = await kernel_limits.acquire_outcome(parent, message, held)
        finally:
            self.children.get(message.attempt, {}).pop(message.call, None)
        if self.parents.get(message.attempt) is parent:
            self._send(address, ChildResult(message.call, outcome))
        else:  # the attempt ended while the grant was being made
            kernel_limits.release_all(held)

    def _send(self, address: str, message: ChildResult) -> None:
        connection = self.connection
        if connection is not None:
            connection.on_client_loop(_reply(connection, address, encode(message)))


async def _reply(connection: _Connection, address: str, data: bytes) -> None:
    try:
        await connection.client._run(deliver, data, workers=[address], nanny=False, wait=True, on_error="ignore")
    except Exception:  # noqa: BLE001 - the worker is gone: its attempt fails with it
        pass
