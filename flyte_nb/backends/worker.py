"""A worker process of the process backend: ``python -m flyte_nb.backends.worker FD``.

(The docker backend's reusable containers run ``... worker --connect SOCKET_PATH`` instead.)

Talks to the kernel over one socket (length-prefixed cloudpickle messages). It keeps the
functions it was sent, runs one action at a time (async ones on its own event loop), streams what
the action prints, and exits when the kernel closes the socket, so it never outlives it.

Messages in: ``("run", action, key, function bytes or None, inputs)``, ``("exit",)``.
Messages out: ``("ready", pid, (major, minor), FORMAT)``, ``("output", action, stream, text)``,
``("done", action, ok, payload, traceback text)``.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import os
import sys
import threading
from multiprocessing.connection import Connection
from typing import Any, Callable

from ..data.serialization import FORMAT, dumps, loads, ship_error, ship_output
from ..errors import user_traceback

_MAX_FUNCTIONS = 256


class _Sender:
    """Sends messages to the kernel; prints from any thread of the action come through here."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.lock = threading.Lock()
        self.action: str | None = None

    def send(self, message: tuple[Any, ...]) -> None:
        data = dumps(message)
        with self.lock:
            self.conn.send_bytes(data)


class _Capture(io.TextIOBase):
    """``sys.stdout``/``sys.stderr`` of the worker: lines go to the kernel, tagged with the action."""

    def __init__(self, name: str, sender: _Sender) -> None:
        self.name = name
        self.sender = sender
        self.pending: list[str] = []
        self.size = 0

    def write(self, text: str) -> int:
        if text:
            self.pending.append(text)
            self.size += len(text)
            if "\n" in text or self.size > 8192:
                self.flush()
        return len(text)

    def flush(self) -> None:
        if self.pending:
            text, self.pending, self.size = "".join(self.pending), [], 0
            self.sender.send(("output", self.sender.action, self.name, text))

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False


def serve(conn: Connection) -> None:
    sender = _Sender(conn)
    sys.stdout = _Capture("stdout", sender)
    sys.stderr = _Capture("stderr", sender)
    functions: dict[str, Callable[..., Any]] = {}
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    sender.send(("ready", os.getpid(), tuple(sys.version_info[:2]), FORMAT))
    while True:
        try:
            message = loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        if message[0] == "exit":
            return
        _, action, key, function_bytes, inputs = message
        sender.action = action
        try:
            func = functions.get(key)
            if func is None:
                if function_bytes is None:
                    raise RuntimeError(f"worker {os.getpid()} was not sent function {key}")
                func = functions[key] = loads(function_bytes)
                if len(functions) > _MAX_FUNCTIONS:
                    functions.pop(next(iter(functions)))
            args, kwargs = loads(inputs)
            result = func(*args, **kwargs)
            if inspect.isawaitable(result):
                result = loop.run_until_complete(result)
            reply = ("done", action, True, ship_output(result, getattr(func, "__name__", "task")), "")
        except BaseException as error:  # noqa: BLE001 - every failure goes back to the kernel
            reply = ("done", action, False, ship_error(error), user_traceback(error))
        sys.stdout.flush()
        sys.stderr.flush()
        sender.action = None
        sender.send(reply)


def main() -> None:
    if sys.argv[1] == "--connect":  # a worker in a container: a unix socket in a mounted folder
        import socket

        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(sys.argv[2])
        except OSError:  # the kernel is gone: exit 0 so that the container does not start us again
            sock.close()
            return
        serve(Connection(sock.detach()))
        return
    fd = int(sys.argv[1])
    serve(Connection(fd))


if __name__ == "__main__":
    main()
