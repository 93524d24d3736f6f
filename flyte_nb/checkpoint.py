"""``flyte.Checkpoint``: state an attempt saves so that its retry resumes instead of starting over.

Each attempt of an action saves to its own file under the flyte_nb home
(``checkpoints/RUN/ACTION/attempt-N``); ``load`` restores the newest file an earlier attempt of
the same action saved. A body in a worker (process, container, Dask) has no such folder: the
kernel sends the newest earlier checkpoint with the attempt, and a save goes back as a note that
the kernel writes there, so a retry resumes wherever each attempt runs. As in the SDK, bytes and files are kept as one payload (restored at
``path / "payload"``) and a folder as a gzip tar of its entries (restored under ``path``).
"""

from __future__ import annotations

import asyncio
import pathlib
import shutil
import tarfile
import tempfile
from abc import ABC, abstractmethod
from typing import Any, Callable

from .data.home import home_dir
from .engine.action import Action
from .engine.attempt_state import AttemptInfo, kept, register, send_note
from .engine.kernel import Recent, kernel

_PAYLOAD = "payload"


class BaseCheckpoint(ABC):
    """What a checkpoint helper offers: a local ``path``, and load/save in async and sync forms."""

    @property
    @abstractmethod
    def path(self) -> pathlib.Path: ...

    @abstractmethod
    def prev_exists(self) -> bool: ...

    @abstractmethod
    async def load(self) -> pathlib.Path | None: ...

    @abstractmethod
    async def save(self, data: pathlib.Path | str | bytes) -> None: ...

    @abstractmethod
    def load_sync(self) -> pathlib.Path | None: ...

    @abstractmethod
    def save_sync(self, data: pathlib.Path | str | bytes) -> None: ...


class Checkpoint(BaseCheckpoint):
    """The checkpoint of one attempt: saves go to ``destination``, loads come from the newest earlier attempt."""

    def __init__(self, folder: pathlib.Path, attempt: int, *, remote: bool = False, shipped: bytes | None = None) -> None:
        self.folder = folder
        self.attempt = attempt
        self.remote = remote  # in a worker: loads come from ``shipped``, saves go to the kernel
        self.shipped = shipped
        self._workspace: pathlib.Path | None = None

    @property
    def destination(self) -> pathlib.Path:
        return self.folder / f"attempt-{self.attempt}"

    @property
    def source(self) -> pathlib.Path | None:
        """The newest checkpoint an earlier attempt saved, if any."""
        if self.remote:
            if self.shipped is None:
                return None
            arrived = pathlib.Path(tempfile.mkdtemp(prefix="flyte_nb-checkpoint-in-")) / "previous"
            arrived.write_bytes(self.shipped)
            return arrived
        return newest_before(self.folder, self.attempt)

    remote_destination = property(lambda self: str(self.destination))
    remote_source = property(lambda self: None if self.source is None else str(self.source))

    @property
    def path(self) -> pathlib.Path:
        """A local folder to restore into and to build the next checkpoint in."""
        if self._workspace is None:
            self._workspace = pathlib.Path(tempfile.mkdtemp(prefix="flyte_nb-checkpoint-"))
        return self._workspace

    def prev_exists(self) -> bool:
        return self.shipped is not None if self.remote else self.source is not None

    def load_sync(self) -> pathlib.Path | None:
        """Restore the previous attempt's checkpoint into ``path``: ``path/payload`` for a payload, else ``path``."""
        source = self.source
        if source is None:
            return None
        workspace = self.path
        for child in workspace.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
        if tarfile.is_tarfile(source):
            with tarfile.open(source, "r:*") as archive:
                archive.extractall(workspace, filter="data")
            return workspace
        shutil.copyfile(source, workspace / _PAYLOAD)
        return workspace / _PAYLOAD

    def save_sync(self, data: pathlib.Path | str | bytes) -> None:
        """Keep ``data`` (bytes, a file, or a folder) as this attempt's checkpoint."""
        if self.remote:
            partial = pathlib.Path(tempfile.mkdtemp(prefix="flyte_nb-checkpoint-out-")) / "checkpoint"
        else:
            self.folder.mkdir(parents=True, exist_ok=True)
            partial = self.destination.with_suffix(".partial")
        if isinstance(data, (bytes, bytearray, memoryview)):
            partial.write_bytes(bytes(data))
        else:
            source = pathlib.Path(data)
            if not source.exists():
                raise FileNotFoundError(f"checkpoint source {source} does not exist")
            if source.is_dir():
                with tarfile.open(partial, "w:gz") as archive:
                    for child in sorted(source.iterdir()):
                        archive.add(child, arcname=child.name)
            else:
                shutil.copyfile(source, partial)
        if self.remote:
            send_note("checkpoint", partial.read_bytes())
            shutil.rmtree(partial.parent, ignore_errors=True)
            return
        partial.replace(self.destination)  # a crash mid-save leaves the previous checkpoint usable

    async def load(self) -> pathlib.Path | None:
        return await asyncio.to_thread(self.load_sync)

    async def save(self, data: pathlib.Path | str | bytes) -> None:
        await asyncio.to_thread(self.save_sync, data)

    def __repr__(self) -> str:
        return f"<Checkpoint {self.destination}>"


def newest_before(folder: pathlib.Path, attempt: int) -> pathlib.Path | None:
    """The newest checkpoint file in ``folder`` that an attempt before ``attempt`` saved."""
    for earlier in range(attempt - 1, 0, -1):
        candidate = folder / f"attempt-{earlier}"
        if candidate.is_file():
            return candidate
    return None


def _folder(run: str, action: str) -> pathlib.Path:
    return home_dir() / "checkpoints" / run / action


class _OpenCheckpoints(Recent[tuple[str, str, int], Checkpoint]):
    """The checkpoints of the newest attempts, by (run, action, attempt)."""

    LIMIT = 256


def checkpoint_for(info: AttemptInfo) -> Checkpoint:
    """The checkpoint of this attempt (one object per attempt, so load and save share a workspace)."""
    def make() -> Checkpoint:
        shipped = kept(info, "checkpoint") if info.remote else None
        return Checkpoint(_folder(info.run, info.action), info.attempt, remote=info.remote, shipped=shipped)

    return kernel().part(_OpenCheckpoints).get_or_make((info.run, info.action, info.attempt), make)


def _previous(action: Action) -> bytes | None:
    """Kernel: the checkpoint an attempt starting in a worker resumes from (only retries have one)."""
    if action.attempts <= 1:
        return None
    source = newest_before(_folder(action.run.name, action.name), action.attempts)
    return source.read_bytes() if source is not None else None


def _saved(action: Action, payload: bytes) -> None:
    """Kernel: a worker body saved its checkpoint; keep it as the attempt's file."""
    checkpoint = Checkpoint(_folder(action.run.name, action.name), action.attempts)
    checkpoint.save_sync(payload)


register("checkpoint", receive=_saved, provide=_previous)


def latest_checkpoint(root: pathlib.Path, glob_pattern: str = "**/last.ckpt", *,
                      key: Callable[[pathlib.Path], Any] | None = None) -> pathlib.Path | None:
    """The file under ``root`` matching ``glob_pattern`` with the largest ``key`` (newest by default)."""
    matches = list(pathlib.Path(root).glob(glob_pattern))
    if not matches:
        return None
    return max(matches, key=key or (lambda p: p.stat().st_mtime))
