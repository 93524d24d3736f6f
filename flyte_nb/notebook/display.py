"""Make a displayed ``Run`` a live widget in a Jupyter kernel.

The api layer knows nothing of widgets; this registers a display hook for ``Run`` with IPython,
and turns off echoing of captured task output (the widget shows it on demand).
"""

from __future__ import annotations

from typing import Any

from ..api.run import Run
from ..engine import output


def show_run(run: Run) -> bool:
    from IPython.display import display

    from .widget import RunWidget

    display(RunWidget(run))
    return True


def register(shell: Any) -> None:
    """Register with an IPython shell (idempotent)."""
    formatter = shell.display_formatter.ipython_display_formatter
    formatter.for_type(Run, show_run)
    if getattr(shell, "kernel", None) is not None:
        output.echo = False


def register_if_in_kernel() -> None:
    """Called on ``import flyte_nb``: register when running inside a Jupyter kernel."""
    import sys

    if "IPython" not in sys.modules:
        return
    from IPython import get_ipython

    shell = get_ipython()
    if shell is not None and getattr(shell, "kernel", None) is not None:
        register(shell)
