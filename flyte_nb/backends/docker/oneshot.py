"""One container per action (the default): create, start, stream logs, wait, collect, remove.

The action runs in a fresh container of its environment's image, with the environment's
``Resources`` (``nano_cpus``, ``mem_limit``) and ``env_vars``. Function and inputs go in, and the
result comes back, as files in a per-run folder that is bind-mounted into the container; what the
body prints streams live from the container's logs (one reader thread per container). The
container is removed after its action, and within 2 s on timeout or abort.
"""

from __future__ import annotations

import asyncio
import codecs
import os
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...data.serialization import loads
from ...engine.output import record
from ...errors import ConfigurationError, OutOfMemoryError, SerializationError, WorkerDiedError

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
    from ...api.policies import memory_bytes

    value = os.environ.get(MAX_RESULT_ENV, DEFAULT_MAX_RESULT)
    try:
        return memory_bytes(int(value) if value.strip().isdigit() else value)
    except ConfigurationError:
        raise ConfigurationError(f"{MAX_RESULT_ENV} must look like '512Mi' or '2Gi', got {value!r}") from None


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
                raise OutOfMemoryError(f"the container running task `{name}` ({short}) was killed: out of memory "
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
