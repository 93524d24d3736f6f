"""Compact progress lines for ``Run.wait()`` outside a notebook (a notebook shows the widget)."""

from __future__ import annotations

import concurrent.futures
import sys
import time
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from .run import Run

INTERVAL = 1.0  # seconds between lines; a run that ends sooner prints nothing


def in_kernel() -> bool:
    """True inside a Jupyter kernel (where the live widget shows progress instead)."""
    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    return getattr(get_ipython(), "kernel", None) is not None


def line(run: Run) -> str:
    counts = " · ".join(f"{n} {phase.replace('_', ' ')}" for phase, n in run.counts.items() if n)
    return f"{run.name}  {run.phase}  {run.duration or 0:.1f}s  {counts}"


def follow(run: Run, timeout: float | None, stream: TextIO | None = None) -> None:
    """Wait for ``run`` (up to ``timeout``), printing a progress line every ``INTERVAL`` seconds."""
    stream = stream or sys.stderr
    deadline = None if timeout is None else time.monotonic() + timeout
    printed = False
    while True:
        left = INTERVAL if deadline is None else min(INTERVAL, deadline - time.monotonic())
        if left <= 0:
            break
        concurrent.futures.wait([run.state.done], timeout=left)
        if run.done():
            break
        print(line(run), file=stream, flush=True)
        printed = True
    if printed and run.done():
        print(line(run), file=stream, flush=True)
