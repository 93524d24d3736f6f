"""Reading framed messages from a socket without waiting, on an event loop (kernel and worker alike).

One ``recv`` per wake-up takes every message that has arrived, where ``Connection.poll`` +
``recv_bytes`` per message built a selector for each poll (a fifth of the kernel's CPU per child
call) and a reader thread in the worker handed each child result to its loop (a thread switch and
a wake-up write per result).
"""

from __future__ import annotations

import socket
import struct


class Frames:
    """Messages framed as ``multiprocessing.connection.Connection.send_bytes`` frames them (the worker's side).

    A 4-byte big-endian length, or -1 then an 8-byte length for messages over 2 GiB.
    """

    def __init__(self) -> None:
        self.buffer = bytearray()

    def take(self, sock: socket.socket) -> bool:
        """Append what ``sock`` holds now; True when the peer has closed its end."""
        while True:
            try:
                chunk = sock.recv(1 << 18, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return False
            if not chunk:
                return True
            self.buffer += chunk
            if len(chunk) < 1 << 18:  # drained for now: the loop wakes us again for more
                return False

    def messages(self) -> list[bytes]:
        found: list[bytes] = []
        buffer, start = self.buffer, 0
        while len(buffer) - start >= 4:
            (size,) = struct.unpack_from("!i", buffer, start)
            head = 4
            if size == -1:
                if len(buffer) - start < 12:
                    break
                (size,) = struct.unpack_from("!Q", buffer, start + 4)
                head = 12
            if len(buffer) - start < head + size:
                break
            found.append(bytes(buffer[start + head:start + head + size]))
            start += head + size
        if start:
            del buffer[:start]
        return found
