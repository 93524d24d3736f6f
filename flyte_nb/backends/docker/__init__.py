"""The docker backend: each action in its own container, or in reusable worker containers.

One-shot (the default, ``oneshot``): an action runs in a fresh container of its environment's
image (``images``), labelled with the run, the action and the owning kernel (``daemon``). The
flyte_nb runtime is not installed in the image but bind-mounted (``runtime``).

Reusable (``reuse``): long-lived containers per environment running socket workers, scaled
between the replica bounds and stopped after ``idle_ttl`` without work.

No orphans: containers are removed after their action (and within 2 s on timeout/abort), all of
this kernel's containers and its temp folder at exit, and, on first use of the backend, those left
by kernels that died on this host (``orphans``, found by label).

This module is the backend itself: per-environment setup, and running an action one way or the other.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import os
import shutil
import socket
import threading
import uuid
import weakref
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...data.serialization import ship_function, ship_inputs
from ...engine.placement import Placement
from ...engine.slots import SlotPool
from ...errors import WorkerDiedError
from ...worker.protocol import unwrap
from ...engine.backend import Backend
from ..link import Link, attempt_id
from .daemon import _PID, _STARTED, BASE_IMAGE, LABEL, _connect, _labels
from .images import BUILT_REPOSITORY, ImageBuildError, check_python, image_ref, require
from .images import _exists as _exists  # the test suite checks for the base image with it
from .oneshot import DEFAULT_MAX_RESULT, MAX_RESULT_ENV, _OneShot, check_result_size, client_state, format_bytes
from .orphans import folder_root, remove_orphans, remove_ours
from .reuse import _ReusePool
from .callees import callees
from .spares import WARM_CAP, Spares
from .runtime import _BOOT, _IO, _LIB, _runtime_volumes

if TYPE_CHECKING:
    from ...engine.action import Action
    from ...engine.spec import TaskSpec

__all__ = ["BASE_IMAGE", "BUILT_REPOSITORY", "DEFAULT_MAX_RESULT", "LABEL", "MAX_RESULT_ENV", "DockerBackend",
           "ImageBuildError", "build_log", "client_state", "format_bytes", "remove_orphans"]

_STOP_WAIT = 2.0


def build_log(tag: str, line: str) -> None:
    """Where build log lines go (the cell's output, or the terminal); tests may replace it."""
    print(f"[flyte_nb build {tag}] {line}", flush=True)


class DockerBackend(Backend):
    name = "docker"

    def __init__(self) -> None:
        self._client: Any = None
        self._client_lock = threading.Lock()
        self.executor = concurrent.futures.ThreadPoolExecutor(8, thread_name_prefix="flyte_nb-docker")
        self._slots: dict[Placement, SlotPool] = {}
        self._functions: weakref.WeakKeyDictionary[TaskSpec, tuple[str, bytes]] = weakref.WeakKeyDictionary()
        self._images: dict[Placement, tuple[str, dict[str, Any]]] = {}  # placement -> (image id, base config)
        self._checked: dict[str, str] = {}  # image id -> "" (ok); errors are not cached
        self._build_locks: dict[str, threading.Lock] = {}
        self._reuse: dict[Placement, _ReusePool] = {}
        self._current: dict[str, Placement] = {}  # environment name -> its current reusable placement
        self._pool_numbers = itertools.count(1)  # folder names of reusable pools, never reused
        self._volumes: dict[str, dict[str, str]] | None = None
        self._hello: dict[str, asyncio.Future[Link]] = {}  # one-shot token -> its container's link
        self._listener: socket.socket | None = None
        self._once: dict[Action, Action] = {}  # actions running in one-shot containers now -> the top of their tree
        self._deferred: dict[Action, list[asyncio.Future[None]]] = {}  # removals of descendants each still waits for
        self._spares: dict[tuple[Placement, Action], Spares] = {}  # (placement, top) -> spares for the top's descendants
        self._pods: dict[Action, _OneShot] = {}  # the top of a one-shot tree -> its container, whose network the tree shares
        self._callees: weakref.WeakKeyDictionary[TaskSpec, bool] = weakref.WeakKeyDictionary()  # calls its own placement
        self.folder = folder_root() / f"flyte_nb-docker-{_PID}-{_STARTED}"

    # -------------------------------------------------------------- setup (threads)
    @property
    def client(self) -> Any:
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    client = _connect()
                    remove_orphans(client)
                    self._client = client
        return self._client

    def _image(self, image: Any) -> str:
        """The local image reference for an environment's ``image``, built first if needed."""
        return image_ref(self.client, image, self._build_locks, build_log)  # build_log looked up now: replaceable

    def _prepare(self, placement: Placement) -> tuple[str, dict[str, Any]]:
        """Image id and the container settings shared by every action of ``placement`` (cached)."""
        prepared = self._images.get(placement)
        if prepared is not None:
            return prepared
        ref = self._image(placement.image)
        found = require(self.client, ref)
        check_python(self.client, found.id, ref, self._checked)
        image_env = dict(e.split("=", 1) for e in (found.attrs.get("Config") or {}).get("Env") or [] if "=" in e)
        if self._volumes is None:
            self._volumes = _runtime_volumes()
        variables = placement.variables
        python_path = os.pathsep.join(p for p in (_LIB, variables.get("PYTHONPATH") or image_env.get("PYTHONPATH")) if p)
        config: dict[str, Any] = {
            "environment": {**variables, "PYTHONPATH": python_path, "PYTHONUNBUFFERED": "1",
                            "PYTHONDONTWRITEBYTECODE": "1", "HOME": variables.get("HOME", "/tmp")},
            "user": f"{os.getuid()}:{os.getgid()}",
            "working_dir": "/tmp",
        }
        if placement.cpu:
            config["nano_cpus"] = int(placement.cpu * 1e9)
        if placement.memory:
            config["mem_limit"] = placement.memory
            config["memswap_limit"] = placement.memory  # no swap: over the limit is out of memory
        prepared = self._images[placement] = (found.id, config)
        return prepared

    def _run_container(self, config: dict[str, Any]) -> Any:
        container = self.client.containers.create(**config)
        container.start()
        return container

    def _remove_quietly(self, container: Any) -> None:
        try:
            container.remove(force=True)
        except Exception:  # noqa: BLE001
            pass

    # -------------------------------------------------------------- engine loop
    def _slot_pool(self, spec: TaskSpec) -> SlotPool:
        placement = _placement(spec)
        pool = self._slots.get(placement)
        if pool is None:
            reuse = placement.reuse
            size = reuse.high * reuse.concurrency if reuse else (placement.concurrency or os.cpu_count() or 1)
            if not reuse and spec.env_pool is not None and spec.env_pool.capacity == size:
                pool = self._slots[placement] = spec.env_pool  # one limit, one pool (see engine.limits)
            else:
                pool = self._slots[placement] = SlotPool(size, f"containers:{spec.env_name}")
        return pool

    def pools(self, spec: TaskSpec) -> tuple[SlotPool, ...]:
        return (self._slot_pool(spec),)

    async def execute(self, action: Action, args: tuple, kwargs: dict) -> Any:
        spec = action.spec
        placement = _placement(spec)
        shipped = self._functions.get(spec)
        if shipped is None:
            shipped = self._functions[spec] = ship_function(spec.func, spec.name)
        inputs = ship_inputs(args, kwargs, spec.name)
        loop = asyncio.get_running_loop()
        prepared = self._images.get(placement)
        if prepared is None:
            prepared = await loop.run_in_executor(self.executor, self._prepare, placement)
        image_id, shared = prepared
        labels = _labels(**{f"{LABEL}.run": action.run.name, f"{LABEL}.action": action.name, f"{LABEL}.task": spec.name,
                            f"{LABEL}.env": spec.env_name, f"{LABEL}.attempt": str(action.attempts)})
        if placement.reuse is not None:
            return await self._execute_reused(action, placement, shipped, inputs, image_id, shared, labels)
        return await self._execute_once(action, placement, shipped, inputs, image_id, shared, labels)

    def _listen(self) -> None:
        """The socket one-shot containers connect to (one per kernel, in the mounted folder)."""
        folder = self.folder / "oneshot"
        folder.mkdir(parents=True, exist_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(folder / "worker.sock"))
        listener.listen(256)
        listener.setblocking(False)
        self._listener = listener
        asyncio.get_running_loop().create_task(self._accept(listener))

    async def _accept(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, _ = await loop.sock_accept(listener)
            except (OSError, asyncio.CancelledError):
                return
            sock.setblocking(True)
            link = Link(loop, Connection(sock.detach()), _fail_link)
            loop.create_task(self._greet(link))

    async def _greet(self, link: Link) -> None:
        try:
            ready = await asyncio.wait_for(asyncio.shield(link.ready), 60)
        except Exception:  # noqa: BLE001 - a broken worker: its action sees its container exit
            link.close()
            return
        waiter = self._hello.get(ready.token or "")
        if waiter is None or waiter.done():
            link.close()
        else:
            waiter.set_result(link)

    def _start_once(self, config: dict[str, Any], action: Action | None,
                    joins: _OneShot | None = None) -> tuple[_OneShot, asyncio.Future[Link]]:
        """Create and start one one-shot container; the future gets its worker's link when it says hello."""
        if self._listener is None:
            self._listen()
        token = uuid.uuid4().hex
        hello = self._hello[token] = asyncio.get_running_loop().create_future()
        hello.add_done_callback(lambda _: self._hello.pop(token, None))
        config = dict(config, command=["python3", "-c", _BOOT, "--connect", f"{_IO}/worker.sock", "--once", token])
        container = _OneShot(self, action, asyncio.get_running_loop(), config, joins=joins)
        if action is None:  # a spare removed unused ends with the daemon's "no such container": nobody asks
            container.exited.add_done_callback(lambda f: f.cancelled() or f.exception())
        return container, hello

    def _spares_for(self, top: Action, placement: Placement, config: dict[str, Any]) -> Spares:
        """The spare containers for the one-shot descendants of ``top`` in ``placement`` (made on first use)."""
        key = (placement, top)
        spares = self._spares.get(key)
        if spares is None:
            labels = dict(config["labels"], **{f"{LABEL}.spare": "1"})
            for name in (f"{LABEL}.action", f"{LABEL}.task", f"{LABEL}.attempt"):
                labels.pop(name, None)
            environment = {k: v for k, v in config["environment"].items() if k not in ("FLYTE_NB_ACTION", "FLYTE_NB_ATTEMPT")}
            spare_config = dict(config, labels=labels, environment=environment)
            pod = self._pods.get(top)
            spares = self._spares[key] = Spares(lambda: self._start_once(spare_config, None, pod),
                                                self._slot_pool(top.spec).capacity or 1)
        return spares

    def _warm(self, top: Action, placement: Placement, config: dict[str, Any]) -> None:
        """``top`` starts a one-shot tree: if its body calls tasks of its own placement, start their spares now.

        As many as the environment's room allows, capped, less what the placement's other trees
        hold (their containers in use and their spares), so all spares stay within its concurrency.
        """
        found = self._callees.get(top.spec)
        if found is None:
            found = self._callees[top.spec] = any(_placement(s) == placement for s in callees(top.spec.func))
        if not found:
            return
        spares = self._spares_for(top, placement, config)
        others = sum(s.in_use + len(s.ready) + len(s.starting) for (p, _), s in self._spares.items()
                     if p == placement and s is not spares)
        spares.warm(min(WARM_CAP, spares.capacity - others))

    def _close_spares(self, top: Action) -> list[asyncio.Future[None]]:
        """``top`` ended: remove the spares kept for its descendants; the futures of their removal."""
        removals: list[asyncio.Future[None]] = []
        for key in [key for key in self._spares if key[1] is top]:
            removals += self._spares.pop(key).close()
        return removals

    async def _removed(self, action: Action, container: _OneShot) -> None:
        """Settles once ``container`` and those of ``action``'s descendants are gone: a finished run leaves none.

        A child whose parent also runs in a one-shot container hands the wait to that parent, so a
        child's result does not wait for its container's removal (which a busy daemon makes slow).
        """
        self._once.pop(action, None)
        if not self._pass_up(action, [container.removed]):
            await asyncio.gather(*self._deferred.pop(action, []), *self._close_spares(action), container.removed)

    def _pass_up(self, action: Action, removals: list[asyncio.Future[None]]) -> bool:
        """Hand ``removals`` (and what ``action`` waited on) to its parent if the parent runs here; True if so."""
        parent = action.parent
        if parent is None or parent not in self._once:
            return False
        self._deferred.setdefault(parent, []).extend(self._deferred.pop(action, []) + removals)
        return True

    async def _execute_once(self, action: Action, placement: Placement, shipped: tuple[str, bytes], inputs: bytes,
                            image_id: str, shared: dict[str, Any], labels: dict[str, str]) -> Any:
        volumes = dict(self._volumes or {})
        volumes[str(self.folder / "oneshot")] = {"bind": _IO, "mode": "rw"}
        variables = dict(shared["environment"], FLYTE_NB_RUN=action.run.name, FLYTE_NB_ACTION=action.name,
                         FLYTE_NB_ATTEMPT=str(action.attempts))
        config = dict(shared, image=image_id, labels=labels, volumes=volumes, detach=True, environment=variables)
        top = self._once.get(action.parent) if action.parent is not None else None  # the one-shot tree it is in
        spares = self._spares_for(top, placement, config) if top is not None else None
        taken = await spares.take() if spares is not None else None  # a top keeps its per-action labels
        if taken is not None:
            container, link = taken
            container.action = action
            hello: asyncio.Future[Link] | None = None
        else:
            container, hello = self._start_once(config, action, self._pods.get(top) if top is not None else None)
            link = None
        if top is None:
            self._pods[action] = container
            self._warm(action, placement, config)
        attempt = attempt_id(action)
        if spares is not None:
            spares.enter()
        try:
            if hello is not None:
                done, _ = await asyncio.wait((hello, container.exited), return_when=asyncio.FIRST_COMPLETED)
                if hello not in done:
                    raise container.diagnose(*container.exited.result())
                link = hello.result()
            self._once[action] = top or action
            try:
                outcome = await link.start(action, attempt, shipped[0], shipped[1], inputs)
            except WorkerDiedError:  # the connection ended without an outcome: say why
                raise container.diagnose(*await asyncio.wait_for(asyncio.shield(container.exited), 30)) from None
            await self._removed(action, container)
        except asyncio.CancelledError:
            container.cancel()  # a timeout or an abort stops the container for real
            try:
                await asyncio.wait_for(self._removed(action, container), _STOP_WAIT)
            except (asyncio.CancelledError, asyncio.TimeoutError):
                pass
            raise
        finally:
            self._once.pop(action, None)
            if top is None:
                self._pods.pop(action, None)
            if not self._pass_up(action, []):  # an error: what it still waits to see removed goes to its parent
                self._deferred.pop(action, None)  # (or nowhere: those containers are being removed anyway)
                self._close_spares(action)
            if spares is not None:
                spares.leave()
            if hello is not None and not hello.done():
                hello.cancel()
            if link is not None:
                link.finish(attempt)
                link.close()
        check_result_size(action.spec.name, len(outcome.payload))
        return unwrap(outcome, f"container {container.short_id}")

    async def _execute_reused(self, action: Action, placement: Placement, shipped: tuple[str, bytes], inputs: bytes,
                              image_id: str, shared: dict[str, Any], labels: dict[str, str]) -> Any:
        pool = self._reuse.get(placement)
        if pool is None:
            assert placement.reuse is not None
            pool = self._reuse[placement] = _ReusePool(self, placement.env_name, placement.reuse, next(self._pool_numbers))
            old = self._current.get(placement.env_name)
            if old is not None and old != placement and old in self._reuse:  # redefined: retire the old containers
                self._reuse.pop(old).shutdown()
            self._current[placement.env_name] = placement
        volumes = dict(self._volumes or {})
        volumes[str(pool.folder)] = {"bind": _IO, "mode": "rw"}
        labels = {k: v for k, v in labels.items() if k not in (f"{LABEL}.run", f"{LABEL}.action", f"{LABEL}.attempt")}
        config = dict(shared, image=image_id, labels=labels, volumes=volumes, detach=True)
        slot = await pool.checkout(config)
        attempt = attempt_id(action)
        try:
            outcome = await slot.link.start(action, attempt, shipped[0], shipped[1], inputs)
        except asyncio.CancelledError:
            slot.replica.kill_slot(slot)
            raise
        finally:
            slot.link.finish(attempt)  # children it still waits for are cancelled
            pool.checkin(slot)
        return unwrap(outcome, f"container {slot.replica.short_id}")

    async def shutdown(self) -> None:
        """Nothing of flyte_nb outlives the kernel: replicas stopped, containers (by label) and the temp folder removed."""
        for pool in self._reuse.values():
            pool.shutdown()
        self._reuse.clear()
        for spares in tuple(self._spares.values()):
            spares.close()
        self._spares.clear()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self.close()

    def close(self) -> None:
        """Remove every container of this kernel and its temp folder."""
        for pool in self._reuse.values():
            for replica in pool.replicas:
                replica.stopped = True
        if self._client is not None:
            remove_ours(self._client)
            self._client.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def _placement(spec: TaskSpec) -> Placement:
    return spec.placement or Placement(spec.env_name)


def _fail_link(link: Link) -> None:
    link.fail_all(lambda action: f"the container running task `{action.spec.name}` closed its connection")

