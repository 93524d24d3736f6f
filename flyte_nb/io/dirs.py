"""``flyte.io.Dir``: a reference to a folder of files, with the SDK's async and ``_sync`` methods."""

from __future__ import annotations

import asyncio
import fnmatch
import pathlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from .files import File
from .storage import fresh_path, local_path

T = TypeVar("T")
_EMPTY = "flyte_nb://empty-dir"


@dataclass
class Dir(Generic[T]):
    """A folder by path; ``walk`` yields a ``File`` per file in it."""

    path: str
    name: str | None = None
    format: str = ""
    hash: str | None = None

    def __post_init__(self) -> None:
        self.path = str(self.path)
        if self.name is None:
            self.name = pathlib.PurePath(self.path).name

    @property
    def local(self) -> pathlib.Path:
        return local_path(self.path)

    @property
    def is_empty(self) -> bool:
        """Whether this is the ``Dir.empty()`` sentinel (no folder was produced)."""
        return self.path == _EMPTY

    @classmethod
    def empty(cls) -> Dir:
        return EmptyDir()

    @classmethod
    def new_remote(cls, dir_name: str | None = None, hash: str | None = None) -> Dir[T]:
        folder = fresh_path(dir_name)
        folder.mkdir(parents=True, exist_ok=True)
        return cls(path=str(folder), hash=hash)

    @classmethod
    def from_existing_remote(cls, remote_path: str, dir_cache_key: str | None = None) -> Dir[T]:
        return cls(path=str(local_path(remote_path)), hash=dir_cache_key)

    @classmethod
    def from_local_sync(cls, local_path: str | pathlib.Path, remote_destination: str | None = None,
                        dir_cache_key: str | None = None, batch_size: int | None = None,
                        chunk_size: int | None = None, max_concurrency: int | None = None) -> Dir[T]:
        """A copy of a local folder in flyte_nb's storage (or at ``remote_destination``)."""
        source = pathlib.Path(local_path)
        if not source.is_dir():
            raise ValueError(f"Directory not found: {source}")
        target = _to_local(remote_destination) if remote_destination else fresh_path(source.name)
        shutil.copytree(source, target, dirs_exist_ok=True)
        return cls(path=str(target), name=source.name, hash=dir_cache_key)

    @classmethod
    async def from_local(cls, local_path: str | pathlib.Path, remote_destination: str | None = None,
                         dir_cache_key: str | None = None, batch_size: int | None = None,
                         chunk_size: int | None = None, max_concurrency: int | None = None) -> Dir[T]:
        return await asyncio.to_thread(cls.from_local_sync, local_path, remote_destination, dir_cache_key)

    def walk_sync(self, recursive: bool = True, file_pattern: str = "*", max_depth: int | None = None) -> Iterator[File]:
        """Every file (sorted by path), down to ``max_depth`` levels (1 = this folder only)."""
        root = self.local
        if self.is_empty or not root.is_dir():
            return
        depth_limit = 1 if not recursive else max_depth
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            relative = path.relative_to(root)
            if depth_limit is not None and len(relative.parts) > depth_limit:
                continue
            if fnmatch.fnmatch(path.name, file_pattern):
                yield File(path=str(path))

    async def walk(self, recursive: bool = True, max_depth: int | None = None) -> AsyncIterator[File]:
        for file in self.walk_sync(recursive=recursive, max_depth=max_depth):
            yield file

    def list_files_sync(self) -> list[File]:
        return list(self.walk_sync(recursive=False))

    async def list_files(self) -> list[File]:
        return self.list_files_sync()

    def get_file_sync(self, file_name: str) -> File | None:
        path = self.local / file_name
        return File(path=str(path)) if path.is_file() else None

    async def get_file(self, file_name: str) -> File | None:
        return self.get_file_sync(file_name)

    def exists_sync(self) -> bool:
        return not self.is_empty and self.local.is_dir()

    async def exists(self) -> bool:
        return self.exists_sync()

    def download_sync(self, local_path: str | pathlib.Path | None = None) -> str:
        """A local copy of the folder (a fresh temporary one unless ``local_path`` is given)."""
        if not self.exists_sync():
            raise FileNotFoundError(f"{self.path} does not exist")
        target = pathlib.Path(local_path) if local_path else pathlib.Path(tempfile.mkdtemp(prefix="flyte_nb-dir-"))
        if target.resolve() != self.local.resolve():
            shutil.copytree(self.local, target, dirs_exist_ok=True)
        return str(target)

    async def download(self, local_path: str | pathlib.Path | None = None) -> str:
        return await asyncio.to_thread(self.download_sync, local_path)

    def __fspath__(self) -> str:
        return str(self.local)


class EmptyDir(Dir):
    """The "no folder was produced" value (``Dir.empty()``); ``is_empty`` is True."""

    def __init__(self) -> None:
        super().__init__(path=_EMPTY, name="")


def _to_local(path: str) -> pathlib.Path:
    return local_path(path)
