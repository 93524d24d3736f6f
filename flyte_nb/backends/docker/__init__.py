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
import atexit
import concurrent.futures
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...data.serialization import dumps, loads, ship_function, ship_inputs
from ...engine.slots import SlotPool
from ...errors import add_note
from ..base import Backend
from .daemon import _PID, _STARTED, BASE_IMAGE, LABEL, _connect, _labels
from .images import BUILT_REPOSITORY, ImageBuildError, check_python, image_ref, require
from .images import _exists as _exists  # the test suite checks for the base image with it
from .oneshot import DEFAULT_MAX_RESULT, MAX_RESULT_ENV, _OneShot, client_state, format_bytes
from .orphans import _our_containers, remove_orphans
from .reuse import _ReusePool
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
        self._slots: dict[str, SlotPool] = {}
        self._functions: dict[int, tuple[str, bytes]] = {}
        self._images: dict[int, tuple[str, dict[str, Any]]] = {}  # id(environment) -> (image id, base config)
        self._checked: dict[str, str] = {}  # image id -> "" (ok); errors are not cached
        self._build_locks: dict[str, threading.Lock] = {}
        self._runs: dict[str, list[Any]] = {}  # run name -> [folder, actions in flight]
        self._reuse: dict[str, _ReusePool] = {}
        self._volumes: dict[str, dict[str, str]] | None = None
        self.folder = Path(tempfile.gettempdir()) / f"flyte_nb-docker-{_PID}-{_STARTED}"
        _backends.append(self)

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

    def _prepare(self, environment: Any) -> tuple[str, dict[str, Any]]:
        """Image id and the container settings shared by every action of ``environment`` (cached)."""
        key = id(environment)
        prepared = self._images.get(key)
        if prepared is not None:
            return prepared
        image = getattr(environment, "image", "auto")
        ref = self._image(image)
        found = require(self.client, ref)
        check_python(self.client, found.id, ref, self._checked)
        image_env = dict(e.split("=", 1) for e in (found.attrs.get("Config") or {}).get("Env") or [] if "=" in e)
        if self._volumes is None:
            self._volumes = _runtime_volumes()
        variables = dict(getattr(environment, "env_vars", {}) or {})
        python_path = os.pathsep.join(p for p in (_LIB, variables.get("PYTHONPATH") or image_env.get("PYTHONPATH")) if p)
        config: dict[str, Any] = {
            "environment": {**variables, "PYTHONPATH": python_path, "PYTHONUNBUFFERED": "1",
                            "PYTHONDONTWRITEBYTECODE": "1", "HOME": variables.get("HOME", "/tmp")},
            "user": f"{os.getuid()}:{os.getgid()}",
            "working_dir": "/tmp",
        }
        resources = getattr(environment, "resources", None)
        if resources is not None:
            if resources.cpu_limit:
                config["nano_cpus"] = int(resources.cpu_limit * 1e9)
            if resources.memory_limit:
                config["mem_limit"] = resources.memory_limit
                config["memswap_limit"] = resources.memory_limit  # no swap: over the limit is out of memory
        prepared = self._images[key] = (found.id, config)
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
        pool = self._slots.get(spec.env_name)
        if pool is None:
            environment = spec.extras.get("environment")
            policy = getattr(environment, "reusable", None)
            if policy is not None:
                high = policy.replicas[1] if isinstance(policy.replicas, tuple) else policy.replicas
                size = high * policy.concurrency
            else:
                size = getattr(environment, "concurrency", None) or os.cpu_count() or 1
            pool = self._slots[spec.env_name] = SlotPool(size, f"containers:{spec.env_name}")
        return pool

    def pools(self, spec: TaskSpec) -> tuple[SlotPool, ...]:
        return (self._slot_pool(spec),)

    async def execute(self, action: Action, args: tuple, kwargs: dict) -> Any:
        spec = action.spec
        environment = spec.extras.get("environment")
        shipped = self._functions.get(id(spec))
        if shipped is None:
            shipped = self._functions[id(spec)] = ship_function(spec.func, spec.name)
        inputs = ship_inputs(args, kwargs, spec.name)
        loop = asyncio.get_running_loop()
        prepared = self._images.get(id(environment))
        if prepared is None:
            prepared = await loop.run_in_executor(self.executor, self._prepare, environment)
        image_id, shared = prepared
        run = action.run.name
        labels = _labels(**{f"{LABEL}.run": run, f"{LABEL}.action": action.name, f"{LABEL}.task": spec.name,
                                 f"{LABEL}.env": spec.env_name, f"{LABEL}.attempt": str(action.attempts)})
        if getattr(environment, "reusable", None) is not None:
            return await self._execute_reused(action, environment, shipped, inputs, image_id, shared, labels)
        entry = self._runs.get(run)
        if entry is None:
            entry = self._runs[run] = [self.folder / action.run.key, 0]  # a key, never the name (issue 18)
            entry[0].mkdir(parents=True, exist_ok=True)
        entry[1] += 1
        stem = f"{action.name}-{action.attempts}"
        prefix = entry[0] / stem
        try:
            prefix.with_name(stem + ".in").write_bytes(dumps(("run", action.name, shipped[0], shipped[1], inputs)))
            volumes = dict(self._volumes or {})
            volumes[str(entry[0])] = {"bind": _IO, "mode": "rw"}
            variables = dict(shared["environment"], FLYTE_NB_RUN=run, FLYTE_NB_ACTION=action.name,
                             FLYTE_NB_ATTEMPT=str(action.attempts))
            config = dict(shared, image=image_id, labels=labels, volumes=volumes, detach=True, environment=variables,
                          command=["python3", "-c", _BOOT, f"{_IO}/{stem}"])
            container = _OneShot(self, action, loop, config, prefix)
            try:
                ok, payload, remote = await container.done
            except asyncio.CancelledError:
                container.cancel()  # a timeout or an abort stops the container for real
                try:
                    await asyncio.wait_for(asyncio.shield(container.removed), _STOP_WAIT)
                except (asyncio.CancelledError, asyncio.TimeoutError):
                    pass
                raise
            await container.removed  # the action ends once its container is gone: a finished run leaves none
            remote, _, where = remote.rpartition("\0")
        finally:
            entry[1] -= 1
            if entry[1] == 0 and self._runs.get(run) is entry:
                del self._runs[run]
                shutil.rmtree(entry[0], ignore_errors=True)
        return _outcome(ok, payload, remote, f"container {where}")

    async def _execute_reused(self, action: Action, environment: Any, shipped: tuple[str, bytes], inputs: bytes,
                              image_id: str, shared: dict[str, Any], labels: dict[str, str]) -> Any:
        spec = action.spec
        pool = self._reuse.get(spec.env_name)
        if pool is None:
            pool = self._reuse[spec.env_name] = _ReusePool(self, spec, environment.reusable)
        volumes = dict(self._volumes or {})
        volumes[str(pool.folder)] = {"bind": _IO, "mode": "rw"}
        labels = {k: v for k, v in labels.items() if k not in (f"{LABEL}.run", f"{LABEL}.action", f"{LABEL}.attempt")}
        config = dict(shared, image=image_id, labels=labels, volumes=volumes, detach=True)
        slot = await pool.checkout(spec, config)
        try:
            ok, payload, remote = await slot.start(action, shipped[0], shipped[1], inputs)
        except asyncio.CancelledError:
            slot.replica.kill_slot(slot)
            raise
        finally:
            pool.checkin(slot)
        return _outcome(ok, payload, remote, f"container {slot.replica.short_id}")

    async def shutdown(self) -> None:
        for pool in self._reuse.values():
            pool.shutdown()
        self._reuse.clear()

    def close(self) -> None:
        """Remove every container of this kernel and its temp folder (at exit)."""
        for pool in self._reuse.values():
            for replica in pool.replicas:
                replica.stopped = True
        if self._client is not None:
            try:
                for container in _our_containers(self._client):
                    self._remove_quietly(container)
            except Exception:  # noqa: BLE001 - the daemon went away first
                pass
            self._client.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "run"


def _outcome(ok: bool, payload: bytes, remote: str, where: str) -> Any:
    if ok:
        return loads(payload)
    error = loads(payload)
    if remote:
        add_note(error, f"remote traceback ({where}):\n{remote.rstrip()}")
    raise error


_backends: list[DockerBackend] = []


@atexit.register
def _close_all() -> None:
    """Nothing of flyte_nb outlives the kernel: containers (by label) and the temp folder."""
    for backend in _backends:
        backend.close()
