"""The docker backend: each action in its own container, or in reusable worker containers.

One-shot (the default): an action runs in a fresh container of its environment's image, with the
environment's ``Resources`` (``nano_cpus``, ``mem_limit``) and ``env_vars``, labelled with the run,
the action and the owning kernel (host, pid, process start time). Function and inputs go in, and
the result comes back, as files in a per-run folder that is bind-mounted into the container; what
the body prints streams live from the container's logs (one reader thread per container). The
flyte_nb runtime is not installed in the image: the ``flyte_nb`` package and the two libraries the
worker needs (cloudpickle, greenlet) are bind-mounted read-only from this kernel's environment and
put on ``PYTHONPATH``.

Reusable (``TaskEnvironment(reusable=ReusePolicy(replicas, idle_ttl, concurrency))``): long-lived
containers per environment, each running ``concurrency`` ``flyte_nb.backends.worker`` processes
that talk to the kernel over a unix socket in the mounted folder (the process backend's protocol),
scaled between the replica bounds and stopped after ``idle_ttl`` without work.

No orphans: containers are removed after their action (and within 2 s on timeout/abort), all of
this kernel's containers and its temp folder at exit, and, on first use of the backend, those left
by kernels that died on this host (found by label).
"""

from __future__ import annotations

import asyncio
import atexit
import codecs
import concurrent.futures
import io
import json
import os
import shlex
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..data.serialization import FORMAT, dumps, loads, ship_function, ship_inputs
from ..engine.output import record
from ..engine.slots import SlotPool
from ..errors import ConfigurationError, FlyteNbError, SerializationError, WorkerDiedError, add_note
from .base import Backend

if TYPE_CHECKING:
    from ..engine.action import Action
    from ..engine.spec import TaskSpec

BASE_IMAGE = os.environ.get("FLYTE_NB_BASE_IMAGE", "flyte-nb-base:bookworm")
BUILT_REPOSITORY = "flyte-nb-image"
MAX_RESULT_ENV = "FLYTE_NB_DOCKER_MAX_RESULT"
DEFAULT_MAX_RESULT = "512Mi"
LABEL = "flyte_nb"  # every container of ours carries flyte_nb=1
_LIB = "/opt/flyte_nb/lib"
_IO = "/opt/flyte_nb/io"
_RUNTIME_PACKAGES = ("flyte_nb", "cloudpickle", "greenlet")  # what the worker imports beyond the stdlib
_STOP_WAIT = 2.0

# Makes ``flyte_nb`` a lazy package in the container (its __init__ runs on first attribute access),
# then runs the one-shot entry or the socket worker.
_BOOT = (
    "import sys,importlib.util as u\n"
    f"d='{_LIB}/flyte_nb'\n"
    "s=u.spec_from_file_location('flyte_nb',d+'/__init__.py',submodule_search_locations=[d])\n"
    "m=u.module_from_spec(s);sys.modules['flyte_nb']=m\n"
    "def g(n):\n"
    " if n.startswith('__'):raise AttributeError(n)\n"
    " del m.__getattr__;s.loader.exec_module(m);return getattr(m,n)\n"
    "m.__getattr__=g\n"
    "if sys.argv[1]=='--connect':\n"
    " sys.argv[0]='worker';from flyte_nb.backends.worker import main;main()\n"
    "else:\n"
    " from flyte_nb.backends.oneshot import main;main(sys.argv[1:])\n"
)


class ImageBuildError(FlyteNbError):
    """An ``Image`` could not be built; the message names the failing step and ends with the log's tail."""


# ------------------------------------------------------------------ identity
def _process_started(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot), or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return ""


_PID = os.getpid()
_HOST = socket.gethostname()
_STARTED = _process_started(_PID) or ""
_KERNEL = f"{_HOST}:{_PID}:{_STARTED}"


def _kernel_alive(pid: str, started: str) -> bool:
    try:
        now = _process_started(int(pid))
    except ValueError:
        return False
    return now is not None and (not started or not now or now == started)


def _describe_exit(code: int) -> str:
    if code > 128:
        try:
            return f"was killed by {signal.Signals(code - 128).name}"
        except ValueError:
            return f"was killed by signal {code - 128}"
    return f"exited with code {code}"


def format_bytes(size: int) -> str:
    for unit, factor in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size} bytes"


def _max_result() -> int:
    from ..api.policies import memory_bytes

    value = os.environ.get(MAX_RESULT_ENV, DEFAULT_MAX_RESULT)
    try:
        return memory_bytes(int(value) if value.strip().isdigit() else value)
    except ConfigurationError:
        raise ConfigurationError(f"{MAX_RESULT_ENV} must look like '512Mi' or '2Gi', got {value!r}") from None


def _runtime_volumes() -> dict[str, dict[str, str]]:
    """Read-only mounts that make the flyte_nb runtime importable in any image with the same Python."""
    import importlib

    volumes = {}
    for name in _RUNTIME_PACKAGES:
        module = importlib.import_module(name)
        volumes[os.path.dirname(os.path.abspath(module.__file__))] = {"bind": f"{_LIB}/{name}", "mode": "ro"}
    return volumes


def _connect() -> Any:
    """A docker client for ``DOCKER_HOST`` (or the default socket), or a one-line error saying what to do."""
    import docker

    where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    client = None
    try:
        if where.startswith("unix://"):  # probe it ourselves: the SDK leaks its socket when the connect fails
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.settimeout(10)
                probe.connect(where[len("unix://"):])
        client = docker.from_env(max_pool_size=64, timeout=120)
        client.ping()
    except Exception as error:  # noqa: BLE001 - every failure to connect reads the same to the user
        if client is not None:
            client.close()
        reason = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
        raise ConfigurationError(f"the Docker daemon at {where} is not reachable ({reason}); start it with "
                                 "scripts/docker-setup or `dockerd &`, or point DOCKER_HOST at a running daemon") from None
    return client


# ------------------------------------------------------------------ cleanup
def remove_orphans(client: Any) -> int:
    """Remove containers and temp folders that kernels which died on this host left behind."""
    removed = 0
    for container in client.containers.list(all=True, filters={"label": [f"{LABEL}.kernel.host={_HOST}"]}):
        labels = container.labels
        if _kernel_alive(labels.get(f"{LABEL}.kernel.pid", ""), labels.get(f"{LABEL}.kernel.started", "")):
            continue
        try:
            container.remove(force=True)
            removed += 1
        except Exception:  # noqa: BLE001 - already gone
            pass
    for folder in Path(tempfile.gettempdir()).glob("flyte_nb-docker-*"):
        parts = folder.name.split("-")
        if len(parts) >= 4 and not _kernel_alive(parts[2], parts[3]):
            shutil.rmtree(folder, ignore_errors=True)
    return removed


def _our_containers(client: Any) -> list[Any]:
    return client.containers.list(all=True, filters={"label": [f"{LABEL}.kernel={_KERNEL}"]})


# ------------------------------------------------------------------ images
def _dockerfile_steps(image: Any, base: str) -> str:
    lines = [f"FROM {base}"]
    if image.apt_packages:
        packages = " ".join(shlex.quote(p) for p in image.apt_packages)
        lines.append("RUN export DEBIAN_FRONTEND=noninteractive && apt-get update -qq && "
                     f"apt-get install -y -qq --no-install-recommends {packages} && rm -rf /var/lib/apt/lists/*")
    if image.pip_packages:
        packages = " ".join(shlex.quote(p) for p in image.pip_packages)
        lines.append("RUN export DEBIAN_FRONTEND=noninteractive PIP_BREAK_SYSTEM_PACKAGES=1 && "
                     "(python3 -m pip --version > /dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq "
                     "--no-install-recommends python3-pip && rm -rf /var/lib/apt/lists/*)) && "
                     f"python3 -m pip install --no-cache-dir --disable-pip-version-check {packages}")
    for key, value in image.env_vars:
        lines.append(f"ENV {key}={json.dumps(value)}")
    return "\n".join(lines) + "\n"


def build_log(tag: str, line: str) -> None:
    """Where build log lines go (the cell's output, or the terminal); tests may replace it."""
    print(f"[flyte_nb build {tag}] {line}", flush=True)


def _build(client: Any, tag: str, digest: str, **kwargs: Any) -> None:
    build_log(tag, "building (only once: the tag is the Image's digest)")
    tail: deque[str] = deque(maxlen=15)
    step = "?"
    try:
        for chunk in client.api.build(tag=tag, rm=True, forcerm=True, decode=True,
                                      labels={f"{LABEL}.image": digest}, **kwargs):
            text = chunk.get("stream")
            if text:
                for line in text.rstrip("\n").splitlines():
                    if line.startswith("Step "):
                        step = line
                    tail.append(line)
                    build_log(tag, line)
            error = chunk.get("error") or (chunk.get("errorDetail") or {}).get("message")
            if error:
                raise ImageBuildError(f"building image {tag} failed at {step!r}: {error.strip()}\n"
                                      "last build log lines:\n" + "\n".join(tail))
    except ImageBuildError:
        raise
    except Exception as error:  # noqa: BLE001 - API errors (bad Dockerfile…) read the same way
        raise ImageBuildError(f"building image {tag} failed at {step!r}: {error}\nlast build log lines:\n"
                              + "\n".join(tail)) from None


# ------------------------------------------------------------------ one container per action
class _OneShot:
    """The life of one container: create, start, stream logs, wait, collect, remove (on its own thread)."""

    def __init__(self, backend: DockerBackend, action: Action, loop: asyncio.AbstractEventLoop,
                 config: dict[str, Any], prefix: Path) -> None:
        self.backend = backend
        self.action = action
        self.loop = loop
        self.config = config
        self.prefix = prefix
        self.container: Any = None
        self.cancelled = False
        self.lock = threading.Lock()
        self.done: asyncio.Future[tuple[bool, bytes, str]] = loop.create_future()
        self.removed: asyncio.Future[None] = loop.create_future()
        threading.Thread(target=self._main, name=f"flyte_nb-docker-{action.name}", daemon=True).start()

    def _settle(self, future: asyncio.Future, value: Any = None, error: BaseException | None = None) -> None:
        def settle() -> None:
            if not future.done():
                future.set_exception(error) if error is not None else future.set_result(value)
        self.loop.call_soon_threadsafe(settle)

    def _stream_logs(self, container: Any) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        stream = None
        try:
            stream = container.logs(stream=True, follow=True)
            for chunk in stream:
                text = decoder.decode(chunk)
                if text:
                    self.loop.call_soon_threadsafe(record, self.action, "stdout", text)
        except Exception:  # noqa: BLE001 - the container was removed under us (abort)
            pass
        finally:
            if stream is not None:
                stream.close()

    def _main(self) -> None:
        client = self.backend.client
        try:
            container = client.containers.create(**self.config)
            with self.lock:
                self.container = container
                cancelled = self.cancelled
            if cancelled:
                return
            container.start()
            logs = threading.Thread(target=self._stream_logs, args=(container,), daemon=True)
            logs.start()
            code = container.wait()["StatusCode"]
            logs.join(5)
            if self.cancelled:
                return
            self._settle(self.done, self._collect(container, code))
        except BaseException as error:  # noqa: BLE001 - reported to the awaiting action
            if not self.cancelled:
                self._settle(self.done, error=error if isinstance(error, Exception) else WorkerDiedError(str(error)))
        finally:
            self._remove()

    def _collect(self, container: Any, code: int) -> tuple[bool, bytes, str]:
        out = Path(f"{self.prefix}.out")
        name = self.action.spec.name
        short = container.short_id
        if code != 0 or not out.exists():
            state = client_state(container)
            if state.get("OOMKilled"):
                limit = self.config.get("mem_limit")
                raise WorkerDiedError(f"the container running task `{name}` ({short}) was killed: out of memory "
                                      f"(limit {format_bytes(limit) if limit else 'none'})")
            if not out.exists():
                raise WorkerDiedError(f"the container running task `{name}` ({short}) {_describe_exit(code)}"
                                      + ("" if code else " without a result"))
        size = out.stat().st_size
        limit = _max_result()
        if size > limit:
            raise SerializationError(f"task `{name}` returned {format_bytes(size)}, over the docker backend's result "
                                     f"limit of {format_bytes(limit)} ({MAX_RESULT_ENV}); raise the limit or write "
                                     "large outputs to a file and return its path")
        ok, payload, remote = loads(out.read_bytes())
        return ok, payload, remote + f"\0{short}"

    def _remove(self) -> None:
        with self.lock:
            container = self.container
            self.container = None
        try:
            if container is not None:
                container.remove(force=True)
        except Exception:  # noqa: BLE001 - already gone (removed by abort, or by the daemon)
            pass
        finally:
            for suffix in (".in", ".out", ".out.tmp"):
                try:
                    os.unlink(f"{self.prefix}{suffix}")
                except OSError:
                    pass
            self._settle(self.removed)

    def cancel(self) -> None:
        """Stop now: kill and remove the container (called on the engine loop; the removal runs on a thread)."""
        with self.lock:
            self.cancelled = True
            container = self.container
        if container is not None:
            threading.Thread(target=self._kill, args=(container,), daemon=True).start()

    def _kill(self, container: Any) -> None:
        try:
            container.remove(force=True)  # SIGKILL + remove in one call; _main's wait() returns
        except Exception:  # noqa: BLE001
            pass


def client_state(container: Any) -> dict[str, Any]:
    container.reload()
    return container.attrs.get("State", {})


# ------------------------------------------------------------------ reusable containers
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
            try:
                container.exec_run(["kill", "-9", str(pid)])
            except Exception:  # noqa: BLE001 - fall back to stopping the whole container
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


class _ReusePool:
    """The reusable containers of one environment, scaled between ``replicas`` bounds."""

    def __init__(self, backend: DockerBackend, spec: TaskSpec, policy: Any) -> None:
        from ..api.policies import seconds_from

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
                await asyncio.wait_for(waiter, 120)
            except asyncio.TimeoutError:
                raise WorkerDiedError(f"no worker container of environment `{self.env_name}` came up within 120 s") from None

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


# ------------------------------------------------------------------ the backend
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
        from ..api.image import Image

        client = self.client
        if isinstance(image, str):
            return BASE_IMAGE if image == "auto" else image
        assert isinstance(image, Image)
        base = image.base or BASE_IMAGE
        extras = bool(image.pip_packages or image.apt_packages or image.env_vars)
        if not image.dockerfile and not extras:
            return base
        tag = f"{image.name or BUILT_REPOSITORY}:{image.digest}"
        lock = self._build_locks.setdefault(tag, threading.Lock())
        with lock:
            if _exists(client, tag):
                return tag
            if image.dockerfile:
                path = Path(image.dockerfile)
                first = f"{tag}-dockerfile" if extras else tag
                if not _exists(client, first):
                    _build(client, first, image.digest, path=str(path.parent), dockerfile=path.name)
                base = first
            if extras:
                self._require(base)
                _build(client, tag, image.digest, fileobj=io.BytesIO(_dockerfile_steps(image, base).encode()))
        return tag

    def _require(self, ref: str) -> Any:
        import docker

        try:
            return self.client.images.get(ref)
        except docker.errors.ImageNotFound:
            hint = "run scripts/docker-setup" if ref == BASE_IMAGE else f"`docker pull {ref}` or `docker build -t {ref} .`"
            raise ConfigurationError(f"image {ref!r} is not available to the Docker daemon (flyte_nb never pulls): "
                                     f"{hint}, or use flyte_nb.Image(...) to have it built") from None

    def _check_python(self, image_id: str, ref: str) -> None:
        """Once per image: its python3 must have the kernel's minor version (cloudpickle needs it)."""
        if image_id in self._checked:
            return
        want = "%d.%d" % sys.version_info[:2]
        try:
            output = self.client.containers.run(
                image_id, ["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], remove=True,
                labels=self._labels(), network_mode="none")
            have = output.decode().strip()
        except Exception as error:  # noqa: BLE001 - no python3 in the image, usually
            reason = str(error).splitlines()[0][:160]
            raise ConfigurationError(f"image {ref!r} cannot run python3 ({reason}); tasks need Python {want} in the "
                                     "image: use Image.from_debian_base() or an image with python3") from None
        if have != want:
            raise ConfigurationError(f"image {ref!r} has Python {have} but this kernel runs {want}; tasks are shipped "
                                     f"with cloudpickle, which needs the same version: use an image with Python {want}")
        self._checked[image_id] = ""

    def _labels(self, **extra: str) -> dict[str, str]:
        return {LABEL: "1", f"{LABEL}.kernel": _KERNEL, f"{LABEL}.kernel.host": _HOST,
                f"{LABEL}.kernel.pid": str(_PID), f"{LABEL}.kernel.started": _STARTED, **extra}

    def _prepare(self, environment: Any) -> tuple[str, dict[str, Any]]:
        """Image id and the container settings shared by every action of ``environment`` (cached)."""
        key = id(environment)
        prepared = self._images.get(key)
        if prepared is not None:
            return prepared
        image = getattr(environment, "image", "auto")
        ref = self._image(image)
        found = self._require(ref)
        self._check_python(found.id, ref)
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
        labels = self._labels(**{f"{LABEL}.run": run, f"{LABEL}.action": action.name, f"{LABEL}.task": spec.name,
                                 f"{LABEL}.env": spec.env_name, f"{LABEL}.attempt": str(action.attempts)})
        if getattr(environment, "reusable", None) is not None:
            return await self._execute_reused(action, environment, shipped, inputs, image_id, shared, labels)
        entry = self._runs.get(run)
        if entry is None:
            entry = self._runs[run] = [self.folder / _safe(run), 0]
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


def _exists(client: Any, ref: str) -> bool:
    import docker

    try:
        client.images.get(ref)
    except docker.errors.ImageNotFound:
        return False
    return True


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
