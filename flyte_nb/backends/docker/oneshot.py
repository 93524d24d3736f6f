"""One container per action (the default): create, start, stream logs, wait, remove.

The action runs in a fresh container of its environment's image, with the environment's
``Resources`` (``nano_cpus``, ``mem_limit``) and ``env_vars``. The container's worker connects to
the kernel's one-shot socket in the mounted folder and speaks the one worker protocol, so the
task calls it makes become child actions (each in a container of its own, in the network
namespace of its tree's top container: ``joins``, ``network``). What the body prints
comes back over the socket; raw writes to the container's stdout stream from its logs. The
container is removed after its action, and within 2 s on timeout or abort.
"""

from __future__ import annotations

import asyncio
import codecs
import os
import signal
import threading
from typing import TYPE_CHECKING, Any

from ...engine.output import record
from ...errors import ConfigurationError, OutOfMemoryError, SerializationError, WorkerDiedError
from ...units import memory_bytes

if TYPE_CHECKING:
    from ...engine.action import Action
    from . import DockerBackend

MAX_RESULT_ENV = "FLYTE_NB_DOCKER_MAX_RESULT"
DEFAULT_MAX_RESULT = "512Mi"


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
    value = os.environ.get(MAX_RESULT_ENV, DEFAULT_MAX_RESULT)
    try:
        return memory_bytes(int(value) if value.strip().isdigit() else value)
    except ConfigurationError:
        raise ConfigurationError(f"{MAX_RESULT_ENV} must look like '512Mi' or '2Gi', got {value!r}") from None


class _OneShot:
    """The life of one container (on its own thread): create, start, stream logs, wait, remove.

    The container runs a worker that connects to the kernel's one-shot socket, names itself with
    its token and exits after one attempt; ``exited`` gets its exit code, ``removed`` settles once
    it is gone.
    """

    def __init__(self, backend: DockerBackend, action: Action | None, loop: asyncio.AbstractEventLoop,
                 config: dict[str, Any], name: str = "", joins: _OneShot | None = None) -> None:
        self.backend = backend
        self.joins = joins  # the container whose network this one shares (its tree's top), if any
        self.running = threading.Event()  # set once started, or failed to (``container`` None then)
        self.action = action
        self.loop = loop
        self.config = config
        self.container: Any = None
        self.short_id = "?"
        self.cancelled = False
        self.lock = threading.Lock()
        self.exited: asyncio.Future[tuple[int, bool]] = loop.create_future()  # exit code, out of memory
        self.removed: asyncio.Future[None] = loop.create_future()
        name = name or (action.name if action is not None else "spare")
        threading.Thread(target=self._main, name=f"flyte_nb-docker-{name}", daemon=True).start()

    def _settle(self, future: asyncio.Future, value: Any = None, error: BaseException | None = None) -> None:
        def settle() -> None:
            if not future.done():
                future.set_exception(error) if error is not None else future.set_result(value)
        self.loop.call_soon_threadsafe(settle)

    def _stream_logs(self, container: Any) -> None:
        """What reaches the container's own stdout/stderr (C code, crash messages), recorded too."""
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        stream = None
        try:
            stream = container.logs(stream=True, follow=True)
            for chunk in stream:
                text = decoder.decode(chunk)
                if text and self.action is not None:  # a spare records from the action it is given
                    self.loop.call_soon_threadsafe(record, self.action, "stdout", text)
        except Exception:  # noqa: BLE001 - the container was removed under us (abort)
            pass
        finally:
            if stream is not None:
                stream.close()

    def _main(self) -> None:
        client = self.backend.client
        try:
            if self.joins is not None:
                self.config = dict(self.config, **self.joins.network())
            container = client.containers.create(**self.config)
            with self.lock:
                self.container = container
                self.short_id = container.short_id
                cancelled = self.cancelled
            if cancelled:
                return
            container.start()
            self.running.set()
            logs = threading.Thread(target=self._stream_logs, args=(container,), daemon=True)
            logs.start()
            code = container.wait()["StatusCode"]
            oom = bool(client_state(container).get("OOMKilled")) if code else False
            logs.join(5)
            self._settle(self.exited, (code, oom))
        except BaseException as error:  # noqa: BLE001 - reported to the awaiting action
            self._settle(self.exited, error=error if isinstance(error, Exception) else WorkerDiedError(str(error)))
        finally:
            self.running.set()
            self._remove()

    def network(self) -> dict[str, str]:
        """Settings that put another container in this one's network namespace (none if it is not running).

        A container joining an existing namespace starts two to three times faster than one the
        daemon makes a network endpoint for (measured: 6 concurrent starts 1.0 s against 2.6 s).
        """
        self.running.wait(60)
        with self.lock:
            container = self.container
        return {"network_mode": f"container:{container.id}"} if container is not None else {}

    def diagnose(self, code: int, oom: bool) -> WorkerDiedError:
        """Why the container ended without an outcome: out of memory, a signal, an exit code."""
        name = self.action.spec.name if self.action is not None else "?"
        if oom:
            limit = self.config.get("mem_limit")
            return OutOfMemoryError(f"the container running task `{name}` ({self.short_id}) was killed: out of memory "
                                   f"(limit {format_bytes(limit) if limit else 'none'})")
        return WorkerDiedError(f"the container running task `{name}` ({self.short_id}) {_describe_exit(code)}"
                               + ("" if code else " without a result"))

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


def check_result_size(name: str, size: int) -> None:
    limit = _max_result()
    if size > limit:
        raise SerializationError(f"task `{name}` returned {format_bytes(size)}, over the docker backend's result "
                                 f"limit of {format_bytes(limit)} ({MAX_RESULT_ENV}); raise the limit or write "
                                 "large outputs to a file and return its path")


def client_state(container: Any) -> dict[str, Any]:
    container.reload()
    return container.attrs.get("State", {})
