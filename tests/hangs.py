"""A bound on how long a test may take, for suites whose tests should be instant or short.

First a ``TimeoutError`` inside the test; should that not end it (hypothesis goes on shrinking a
slow example, a thread swallows the error), a hard exit with every thread's stack 60 s later:
a failing CI run that says where it stuck, never one that hangs until its time runs out.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def bounded(seconds: int, what: str) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGALRM"):
        yield
        return

    def on_alarm(signum: int, frame: object) -> None:
        signal.signal(signal.SIGALRM, lambda *_: (faulthandler.dump_traceback(all_threads=True), os._exit(3)))
        signal.alarm(60)
        raise TimeoutError(f"{what} hung for {seconds}s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
