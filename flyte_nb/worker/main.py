"""``python -m flyte_nb.worker FD`` (process pool) or ``... --connect SOCKET [--once TOKEN]`` (containers).

The worker reads messages on one thread and runs attempts on its main thread, so a child's result
or the kernel's going away is seen while an attempt runs. It never outlives the kernel: on Linux
the kernel's death kills it (``PR_SET_PDEATHSIG``), and everywhere the socket closing does
(``os._exit`` from the reader thread, even in the middle of an attempt). With ``--once`` it exits
after one attempt (a Docker one-shot container is a worker that exits after one action).
"""

from __future__ import annotations

import io
import os
import queue
import signal
import socket
import sys
import threading
from multiprocessing.connection import Connection
from .frames import Frames
from .protocol import VERSION, ChildResult, Done, Exit, Message, Output, Ready, Run, decode, encode
from .runner import Runner, current_attempt


class _Sender:
    """Thread-safe sends on the worker's one connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.lock = threading.Lock()

    def __call__(self, message: Message) -> None:
        data = encode(message)
        with self.lock:
            self.conn.send_bytes(data)


class _Capture(io.TextIOBase):
    """``sys.stdout``/``sys.stderr``: text goes to the kernel, tagged with the attempt that wrote it."""

    def __init__(self, name: str, send: _Sender, runner: Runner) -> None:
        self.name = name
        self.send = send
        self.runner = runner
        self.lock = threading.Lock()
        self.pending: dict[str | None, list[str]] = {}

    def _attempt(self) -> str | None:
        attempt = current_attempt.get()
        if attempt is not None:
            return attempt.id
        running = tuple(self.runner.running)  # a thread the body started: the only attempt, if one
        return running[0] if len(running) == 1 else None

    def write(self, text: str) -> int:
        if text:
            attempt = self._attempt()
            with self.lock:
                pending = self.pending.setdefault(attempt, [])
                pending.append(text)
                flush = "\n" in text or sum(map(len, pending)) > 8192
            if flush:
                self.flush()
        return len(text)

    def flush(self) -> None:
        with self.lock:
            pending, self.pending = self.pending, {}
        for attempt, chunks in pending.items():
            if chunks:
                self.send(Output(attempt, self.name, "".join(chunks)))

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False


def _die_with_parent(kernel_pid: int) -> None:
    """Linux: the kernel's death (even SIGKILL) kills this worker at once, busy or not."""
    if not sys.platform.startswith("linux") or not kernel_pid:
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - the socket watchdog still applies
        return
    if os.getppid() != kernel_pid:  # the kernel died before prctl took effect
        os._exit(1)


def serve(conn: Connection, once: str | None = None) -> None:
    send = _Sender(conn)
    where = f"worker {os.getpid()}" if once is None else f"container {os.environ.get('HOSTNAME', '?')}"
    runner = Runner(send, where)
    sys.stdout = _Capture("stdout", send, runner)
    sys.stderr = _Capture("stderr", send, runner)
    runs: queue.Queue[Run | None] = queue.Queue()
    sock = socket.fromfd(conn.fileno(), socket.AF_UNIX, socket.SOCK_STREAM)  # a dup: reads never wait
    frames = Frames()

    def readable() -> None:  # on the runner's loop: a child's result is handled where it is awaited
        try:
            ended = frames.take(sock)
        except OSError:
            ended = True
        told_to_exit = False
        for data in frames.messages():
            message = decode(data)
            if isinstance(message, ChildResult):
                runner.resolve_here(message)
            elif isinstance(message, Run):
                runs.put(message)
            elif isinstance(message, Exit):
                told_to_exit = ended = True
                break
        if ended:
            if runner.running and not told_to_exit:
                os._exit(1)  # the kernel is gone: nobody waits for this attempt
            runner.loop.remove_reader(sock.fileno())
            runs.put(None)

    runner.loop.call_soon_threadsafe(runner.loop.add_reader, sock.fileno(), readable)
    send(Ready(os.getpid(), tuple(sys.version_info[:2]), VERSION, once))
    while True:
        run = runs.get()
        if run is None:
            return
        if once is not None and run.context is not None:  # a spare container learns its action now
            os.environ.update(FLYTE_NB_RUN=run.context.run, FLYTE_NB_ACTION=run.context.action,
                              FLYTE_NB_ATTEMPT=str(run.context.attempt))
        outcome = runner.execute(run)
        sys.stdout.flush()
        sys.stderr.flush()
        send(Done(run.attempt, outcome))
        if once is not None:
            return


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[0] == "--connect":  # a worker in a container: a unix socket in a mounted folder
        import socket

        once = argv[3] if len(argv) > 3 and argv[2] == "--once" else None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(argv[1])
        except OSError:  # the kernel is gone: exit 0 so that the container does not start us again
            sock.close()
            return
        serve(Connection(sock.detach()), once)
        return
    _die_with_parent(int(os.environ.get("FLYTE_NB_KERNEL_PID", "0")))
    serve(Connection(int(argv[0])))
