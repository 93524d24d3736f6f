"""flyte.io File and Dir: write a new remote file, read it back, upload a folder and walk it."""

import os
import tempfile

import flyte
from flyte.io import Dir, File

env = flyte.TaskEnvironment("files")


@env.task
async def write() -> File:
    file = File.new_remote()
    async with file.open("wb") as handle:
        await handle.write(b"alpha,beta\n")
    return file


@env.task
async def read(file: File) -> str:
    async with file.open("rb") as handle:
        return bytes(await handle.read()).decode()


@env.task
async def folder() -> Dir:
    local = tempfile.mkdtemp()
    for name in ("a.txt", "b.txt"):
        with open(os.path.join(local, name), "w") as handle:
            handle.write(name)
    return await Dir.from_local(local)


@env.task
async def walk(d: Dir) -> list:
    return sorted([f.name async for f in d.walk()])


@env.task
async def main() -> list:
    file = await write()
    uploaded = File.from_local_sync(await File.download(file))
    return [await read(file), await read(uploaded), await walk(await folder())]
