"""The kernel's end of one worker connection (process worker, Docker container), on the engine loop.

It starts attempts (``Run``), records what they print, and serves the task calls they make: each
``CallChild`` becomes a child action of the attempt's action through the controller — the same
path as a call made in the kernel, so slots are lent, throttles, retries, timeouts, cache, events
and the store all apply, and the child runs on its own environment's backend. A limit the body
uses (``Acquire``, ``Release``, ``Settle``) draws on the kernel's budget (``limits``). When an
attempt ends, however it ends, the children it still waits for are cancelled and the semaphore
slots it still holds are given back.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, Callable

from ..engine.attempt_state import info_for, receive_note
from ..engine.output import record
from ..engine.run_state import GroupStats
from ..errors import WorkerDiedError
from ..worker.frames import Frames
from ..worker.protocol import (VERSION, Acquire, CallChild, CancelChild, ChildResult, Done, Message, Note, Outcome,
                               Output, Ready, Release, Run, Settle, decode, encode)
from . import limits
from .child_calls import child_outcome

if TYPE_CHECKING:
    from ..engine.action import Action


class _Running:
    """One attempt in flight on this link."""

    __slots__ = ("action", "reply", "children", "maps", "held")

    def __init__(self, action: Action, reply: asyncio.Future[Outcome]) -> None:
        self.action = action
        self.reply = reply
        self.children: dict[int, asyncio.Task[Any]] = {}  # child calls and acquisitions in flight
        self.maps: dict[str, GroupStats] = {}  # groups of this attempt's maps, by map key
        self.held: dict[int, limits.KernelLimit] = {}  # semaphore slots its body holds, by acquisition


class Link:
    """Messages in and out of one worker; ``on_close(link)`` runs when the connection ends."""

    def __init__(self, loop: asyncio.AbstractEventLoop, conn: Connection, on_close: Callable[[Link], None]) -> None:
        self.loop = loop
        self.conn = conn
        self.on_close = on_close
        self.ready: asyncio.Future[Ready] = loop.create_future()
        self.running: dict[str, _Running] = {}
        self.functions: set[str] = set()  # function keys this worker has
        self.tasks: dict[str, Any] = {}  # task tokens this worker sent by value → the task
        self.closed = False
        self._socket = socket.fromfd(conn.fileno(), socket.AF_UNIX, socket.SOCK_STREAM)  # a dup: reads never wait
        self._frames = Frames()
        loop.add_reader(self._socket.fileno(), self._readable)

    def send(self, message: Message) -> None:
        if not self.closed:
            try:
                self.conn.send_bytes(encode(message))
            except OSError:
                self.close()

    def alive(self) -> bool:
        """Read what is pending first (an EOF from a worker killed a moment ago), then say."""
        if not self.closed:
            self._readable()
        return not self.closed

    def _readable(self) -> None:
        """Take what the socket has now (never waiting) and handle each whole message in it.

        One ``recv`` per wake-up instead of ``Connection.poll`` + ``recv_bytes`` per message (a poll
        builds a selector each time: a fifth of the kernel's CPU per child call).
        """
        if self.closed:
            return
        try:
            ended = self._frames.take(self._socket)
        except OSError:
            ended = True
        for data in self._frames.messages():
            self._on_message(decode(data))
            if self.closed:
                return
        if ended:
            self.close()

    def _on_message(self, message: Message) -> None:
        if isinstance(message, Output):
            running = self.running.get(message.attempt) if message.attempt else _only(self.running)
            if running is not None:
                record(running.action, message.stream, message.text)
        elif isinstance(message, CallChild):
            running = self.running.get(message.attempt)
            if running is not None:
                running.children[message.call] = self.loop.create_task(self._child(running, message))
        elif isinstance(message, Note):
            running = self.running.get(message.attempt)
            if running is not None:
                receive_note(running.action, message.kind, message.payload)
        elif isinstance(message, CancelChild):
            running = self.running.get(message.attempt)
            task = running.children.get(message.call) if running is not None else None
            if task is not None:
                task.cancel()
            elif running is not None:  # an acquisition granted as the body gave up on it
                limits.release(running.held, message.call)
        elif isinstance(message, Acquire):
            running = self.running.get(message.attempt)
            if running is not None:
                running.children[message.call] = self.loop.create_task(self._acquire(running, message))
        elif isinstance(message, Release):
            running = self.running.get(message.attempt)
            if running is not None:
                limits.release(running.held, message.call)
        elif isinstance(message, Settle):
            if message.attempt in self.running:
                limits.settle(message)
        elif isinstance(message, Done):
            running = self.running.get(message.attempt)
            if running is not None and not running.reply.done():
                running.reply.set_result(message.outcome)
        elif isinstance(message, Ready):
            if message.version != VERSION or tuple(message.python) != tuple(sys.version_info[:2]):
                error = WorkerDiedError(f"worker speaks protocol {message.version} on Python {message.python}, "
                                        f"the kernel {VERSION} on {sys.version_info[:2]}")
                if not self.ready.done():
                    self.ready.set_exception(error)
                self.close()
            elif not self.ready.done():
                self.ready.set_result(message)

    async def _child(self, running: _Running, message: CallChild) -> None:
        try:
            outcome = await child_outcome(running.action, message, self.tasks, running.maps)
        finally:
            running.children.pop(message.call, None)
        self.send(ChildResult(message.call, outcome))

    async def _acquire(self, running: _Running, message: Acquire) -> None:
        try:
            outcome = await limits.acquire_outcome(running.action, message, running.held)
        finally:
            running.children.pop(message.call, None)
        if self.running.get(message.attempt) is running:
            self.send(ChildResult(message.call, outcome))
        else:  # the attempt ended while the grant was being made
            limits.release(running.held, message.call)

    def start(self, action: Action, attempt: str, key: str, function: bytes, inputs: bytes) -> asyncio.Future[Outcome]:
        """Send one attempt; the future gets its outcome (or ``WorkerDiedError`` if the link closes)."""
        reply: asyncio.Future[Outcome] = self.loop.create_future()
        self.running[attempt] = _Running(action, reply)
        self.send(Run(attempt, key, None if key in self.functions else function, inputs, info_for(action, remote=True)))
        self.functions.add(key)
        return reply

    def finish(self, attempt: str) -> None:
        """The attempt is over: cancel the children it still waits for."""
        running = self.running.pop(attempt, None)
        if running is not None:
            for task in tuple(running.children.values()):
                task.cancel()
            limits.release_all(running.held)

    def close(self, why: str = "closed its connection") -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.loop.remove_reader(self._socket.fileno())
        except (ValueError, OSError):
            pass
        self._socket.close()
        self.conn.close()
        if not self.ready.done():
            self.ready.set_exception(WorkerDiedError(f"the worker {why} before it was ready"))
            self.ready.exception()  # whoever waits for it still gets it; nobody waiting is no error to log
        self.on_close(self)

    def fail_all(self, describe: Callable[[Action], str]) -> None:
        """Every attempt still running here fails with ``WorkerDiedError(describe(action))``."""
        for running in tuple(self.running.values()):
            if not running.reply.done():
                running.reply.set_exception(WorkerDiedError(describe(running.action)))


def _only(running: dict[str, _Running]) -> _Running | None:
    return next(iter(running.values())) if len(running) == 1 else None


def attempt_id(action: Action) -> str:
    """The routing id of an action's current attempt (unique among a run's attempts)."""
    return f"{action.run.name}/{action.name}/{action.attempts}"
