"""Make a displayed ``Run`` a live widget in a Jupyter kernel.

The api layer knows nothing of widgets; this registers a display hook for ``Run`` with IPython,
and turns off echoing of captured task output (the widget shows it on demand).
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..api.run import Run
from ..engine.kernel import kernel
from ..engine.loop import engine


def show_run(run: Run) -> bool:
    from IPython.display import display

    from .widget import RunWidget

    display(RunWidget(run))
    return True


class ShownRun:
    """A run's widget displayed under the cell, whose saved text can be brought up to date."""

    def __init__(self, run: Run) -> None:
        from IPython.display import display

        from .widget import RunWidget

        self.widget = RunWidget(run)
        self.handle = display(self.widget, display_id=True)

    def finish(self) -> None:
        """Re-publish once the run has ended: the text/plain and HTML that a saved notebook keeps
        were those of the moment of display (``queued`` for a run that failed at once)."""
        if self.handle is None:
            return
        try:  # the engine thread owns the widget: let it take the final state first (see RunWidget._attach)
            engine().submit(asyncio.sleep(0)).result(timeout=5)
        except Exception:  # noqa: BLE001 - a wedged engine must not hide the cell's own error
            pass
        self.handle.update(self.widget)


def register(shell: Any) -> None:
    """Register with an IPython shell (idempotent)."""
    formatter = shell.display_formatter.ipython_display_formatter
    formatter.for_type(Run, show_run)
    if getattr(shell, "kernel", None) is not None:
        kernel().echo = False


def register_if_in_kernel() -> None:
    """Called on ``import flyte_nb``: register when running inside a Jupyter kernel."""
    import sys

    if "IPython" not in sys.modules:
        return
    from IPython import get_ipython

    shell = get_ipython()
    if shell is not None and getattr(shell, "kernel", None) is not None:
        register(shell)
