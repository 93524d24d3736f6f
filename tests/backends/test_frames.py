"""The link's non-blocking reader takes exactly the messages ``Connection.send_bytes`` framed."""

from __future__ import annotations

import os
import socket
import threading
from multiprocessing.connection import Connection

from flyte_nb.worker.frames import Frames


def test_messages_split_across_reads_and_packed_in_one_arrive_whole_and_in_order():
    ours, theirs = socket.socketpair()
    sender = Connection(theirs.detach())
    sent = [b"", b"x", os.urandom(3 * (1 << 18) + 5), b"tail" * 10, os.urandom(70_000)]

    def send() -> None:  # a writer that the reader's buffer must wait for in pieces
        for data in sent:
            sender.send_bytes(data)
        sender.close()

    writer = threading.Thread(target=send)
    writer.start()
    frames, got, ended = Frames(), [], False
    while not ended:  # busy-polls: take() never waits
        ended = frames.take(ours)
        got += frames.messages()
    writer.join()
    ours.close()
    assert got == sent
    assert frames.buffer == bytearray()


def test_nothing_there_is_no_message_and_not_an_end():
    ours, theirs = socket.socketpair()
    frames = Frames()
    assert frames.take(ours) is False and frames.messages() == []
    theirs.sendall(b"\x00\x00\x00\x05abc")  # a message whose rest has not arrived
    assert frames.take(ours) is False and frames.messages() == []
    theirs.sendall(b"de")
    frames.take(ours)
    assert frames.messages() == [b"abcde"]
    theirs.close()
    assert frames.take(ours) is True
    ours.close()
