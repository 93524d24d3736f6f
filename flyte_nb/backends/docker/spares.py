"""Spare one-shot containers: started ahead of need, so a child action does not wait for start-up.

A one-shot container is still a fresh container that runs one action and exits; a spare is one
whose worker has started and said hello but has not been given its action yet. Spares are kept
for the children of an action that itself runs in a one-shot container (a driver and its children
in one environment), per placement. When such a driver starts and its code names tasks of its own
placement (``callees``), spares start at once beside its container (``warm``: as many as the
environment's room, at most ``WARM_CAP``); later, each child's start keeps up to the most children
that ran there at once. Never more than the environment's room (its concurrency less the tree's
children running: the driver only awaits them), so they are bounded by the concurrency the user
set. A tree's containers share its top's network namespace (``_OneShot.network``): joining one
starts two to three times faster than a container the daemon makes a network endpoint for. They
carry the kernel's labels (orphans are found like any other container), the run's and
``flyte_nb.spare=1`` (the action one runs is in the run store, not in an immutable label), and are
removed, and waited for, when that top action ends (the kernel's close removes any left). The top
action never takes a spare: its container keeps every per-action label.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from ..link import Link
    from .oneshot import _OneShot

WARM_CAP = 8  # spares a starting driver gets at most: container starts compete for the daemon and the cores

Start = Callable[[], "tuple[_OneShot, asyncio.Future[Link]]"]


class Spares:
    """The spare containers kept for the one-shot descendants of one top action in one placement."""

    def __init__(self, start: Start, capacity: int) -> None:
        self.start = start  # creates a container and the future of its worker's hello
        self.capacity = capacity
        self.ready: deque[tuple[_OneShot, Link]] = deque()
        self.starting: dict[asyncio.Task[None], _OneShot] = {}
        self.in_use = 0  # the tree's descendants running here (its top only awaits them: it lends its room)
        self.peak = 0  # the most descendants at once so far
        self.closed = False
        self.waiters: deque[asyncio.Future[tuple[_OneShot, Link] | None]] = deque()  # waiting for a starting spare

    async def take(self) -> tuple[_OneShot, Link] | None:
        """A spare whose worker is there; one still starting if none is ready (sooner than a cold start); or None."""
        while self.ready:
            container, link = self.ready.popleft()
            if link.alive() and not container.exited.done():
                return container, link
            link.close()
            container.cancel()
        if len(self.starting) <= len(self.waiters):
            return None
        waiter: asyncio.Future[tuple[_OneShot, Link] | None] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter in self.waiters:
                self.waiters.remove(waiter)
            elif waiter.done() and not waiter.cancelled() and waiter.result() is not None:
                self.ready.appendleft(waiter.result())  # handed over as we were cancelled: keep it for another
            raise

    def enter(self) -> None:
        self.in_use += 1
        self.peak = max(self.peak, self.in_use)
        self.top_up()

    def leave(self) -> None:
        self.in_use -= 1

    def top_up(self) -> None:
        """Start spares up to the most descendants seen at once, within the environment's room.

        (Twice as many, to keep further ahead, was slower on a loaded machine: container starts
        compete for the daemon and the cores.)
        """
        self._start(min(self.capacity - self.in_use, self.peak))

    def warm(self, count: int) -> None:
        """A driver is starting: start ``count`` spares now (within the room), beside its own container.

        The first children then find containers that started while the driver's did, instead of
        starting theirs after the first call.
        """
        self._start(min(self.capacity - self.in_use, count))

    def _start(self, wanted: int) -> None:
        """Start spares until ``wanted`` are ready or starting."""
        if self.closed:
            return
        for _ in range(wanted - len(self.ready) - len(self.starting)):
            container, hello = self.start()
            task = asyncio.get_running_loop().create_task(self._greeted(container, hello))
            self.starting[task] = container
            task.add_done_callback(lambda t: self.starting.pop(t, None))

    async def _greeted(self, container: _OneShot, hello: asyncio.Future[Link]) -> None:
        try:
            await asyncio.wait((hello, container.exited), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            container.cancel()
            raise
        greeted = hello.done() and not hello.cancelled() and hello.exception() is None
        if greeted and not self.closed:
            while self.waiters:  # a child already waits for it
                waiter = self.waiters.popleft()
                if not waiter.done():
                    waiter.set_result((container, hello.result()))
                    return
            self.ready.append((container, hello.result()))
            return
        self._wake_one()  # it failed to start: a child waiting for it falls back to a cold start
        if greeted:
            hello.result().close()
        container.cancel()

    def _wake_one(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def close(self) -> list[asyncio.Future[None]]:
        """The top ended: remove every spare, started or starting; the futures of their removal."""
        self.closed = True
        while self.waiters:
            self._wake_one()
        removals = []
        for task, container in tuple(self.starting.items()):
            task.cancel()
            container.cancel()
            removals.append(container.removed)
        while self.ready:
            container, link = self.ready.popleft()
            link.close()
            container.cancel()
            removals.append(container.removed)
        return removals
