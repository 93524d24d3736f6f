"""``flyte.io.File``: a reference to one file, readable and writable from any task, as in the SDK.

Methods without ``_sync`` are async (``await File.from_local(...)``, ``async with f.open("wb")``),
their ``_sync`` twins are for ``def`` tasks. Data sits under the flyte_nb home (see ``storage``),
so a ``File`` passed between tasks, processes and runs of this machine points at the same bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import pathlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import IO, Any, Generic, TypeVar

from .storage import fresh_path, local_path, named_path

T = TypeVar("T")


class HashFunction:
    """A hash accumulated while a file is written: ``HashFunction.from_fn(lambda data: ...)``."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self._data = bytearray()

    @classmethod
    def from_fn(cls, fn: Any) -> HashFunction:
        return cls(fn)

    def update(self, data: bytes) -> None:
        self._data += data

    def result(self) -> str:
        return self.fn(bytes(self._data))

    def reset(self) -> None:
        self._data.clear()


class AsyncFile:
    """The async file object of ``File.open``: ``await f.read()``, ``await f.write(...)``, ``async for line in f``."""

    def __init__(self, handle: IO[Any]) -> None:
        self._handle = handle

    async def read(self, size: int = -1) -> Any:
        return self._handle.read(size)

    async def readline(self) -> Any:
        return self._handle.readline()

    async def write(self, data: Any) -> int:
        return self._handle.write(data)

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._handle.seek(offset, whence)

    async def tell(self) -> int:
        return self._handle.tell()

    async def flush(self) -> None:
        self._handle.flush()

    async def close(self) -> None:
        self._handle.close()

    def __aiter__(self) -> AsyncFile:
        return self

    async def __anext__(self) -> Any:
        line = self._handle.readline()
        if not line:
            raise StopAsyncIteration
        return line


@dataclass
class File(Generic[T]):
    """A file by path; ``name`` defaults to the path's last part, ``format`` is free text (e.g. 'csv')."""

    path: str
    name: str | None = None
    format: str = ""
    hash: str | None = None
    hash_method: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.path = str(self.path)
        if self.name is None:
            self.name = pathlib.PurePath(self.path).name

    @property
    def local(self) -> pathlib.Path:
        return local_path(self.path)

    # ------------------------------------------------------------ constructors
    @classmethod
    def new_remote(cls, file_name: str | None = None, hash_method: Any = None) -> File[T]:
        """A new file to write to (``open("wb")``), at a path nobody used yet."""
        return cls(path=str(fresh_path(file_name)), hash_method=hash_method)

    @classmethod
    def named_remote(cls, name: str) -> File[T]:
        """The file of this name: the same path every time, so reruns overwrite it."""
        return cls(path=str(named_path(name)))

    @classmethod
    def from_existing_remote(cls, remote_path: str, file_cache_key: str | None = None) -> File[T]:
        return cls(path=str(local_path(remote_path)), hash=file_cache_key)

    @classmethod
    def from_local_sync(cls, local_path: str | pathlib.Path, remote_destination: str | None = None,
                        hash_method: Any = None, chunk_size: int | None = None,
                        max_concurrency: int | None = None) -> File[T]:
        """A copy of a local file in flyte_nb's storage (or at ``remote_destination``)."""
        source = pathlib.Path(local_path)
        if not source.is_file():
            raise ValueError(f"File not found: {source}")
        target = _local(remote_destination) if remote_destination else fresh_path(source.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        digest = hash_method if isinstance(hash_method, str) else _digest(target, hash_method)
        return cls(path=str(target), name=source.name, hash=digest)

    @classmethod
    async def from_local(cls, local_path: str | pathlib.Path, remote_destination: str | None = None,
                         hash_method: Any = None, chunk_size: int | None = None,
                         max_concurrency: int | None = None) -> File[T]:
        return await asyncio.to_thread(cls.from_local_sync, local_path, remote_destination, hash_method)

    # ------------------------------------------------------------------ access
    @contextlib.contextmanager
    def open_sync(self, mode: str = "rb", block_size: int | None = None, cache_type: str = "readahead",
                  cache_options: dict | None = None, compression: str | None = None, **kwargs: Any) -> Iterator[IO[Any]]:
        """The file opened like ``open()``; writing creates it (and its folder)."""
        path = self.local
        if any(flag in mode for flag in "wax"):
            path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, mode, **kwargs) as handle:
            yield handle
        if any(flag in mode for flag in "wax") and self.hash_method is not None:
            self.hash = _digest(path, self.hash_method)

    @contextlib.asynccontextmanager
    async def open(self, mode: str = "rb", block_size: int | None = None, cache_type: str = "readahead",
                   cache_options: dict | None = None, compression: str | None = None,
                   **kwargs: Any) -> AsyncIterator[AsyncFile]:
        with self.open_sync(mode, **kwargs) as handle:
            yield AsyncFile(handle)

    def exists_sync(self) -> bool:
        return self.local.exists()

    async def exists(self) -> bool:
        return self.exists_sync()

    def download_sync(self, local_path: str | pathlib.Path | None = None) -> str:
        """A local copy of the file (in a fresh temporary folder unless ``local_path`` is given)."""
        source = self.local
        if not source.is_file():
            raise FileNotFoundError(f"{self.path} does not exist")
        if local_path is None:
            target = pathlib.Path(tempfile.mkdtemp(prefix="flyte_nb-download-")) / (self.name or source.name)
        else:
            target = pathlib.Path(local_path)
            if target.is_dir():
                target = target / (self.name or source.name)
        if target.resolve() != source.resolve():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        return str(target)

    async def download(self, local_path: str | pathlib.Path | None = None) -> str:
        return await asyncio.to_thread(self.download_sync, local_path)

    def __fspath__(self) -> str:
        return str(self.local)


def _local(path: str) -> pathlib.Path:
    return local_path(path)


def _digest(path: pathlib.Path, method: Any) -> str | None:
    if method is None:
        return None
    if isinstance(method, HashFunction):
        method.reset()
        method.update(path.read_bytes())
        return method.result()
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
