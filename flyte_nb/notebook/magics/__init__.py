"""IPython magics: ``%environment``, ``%%task``, ``%%run`` and ``%flyte`` (``%load_ext flyte_nb``).

Each magic declares its options with IPython's ``magic_arguments`` (so ``%environment?`` shows
them, and so does ``%environment --help``). Every mistake in the magic line or in the shape of a
cell is an IPython ``UsageError``: one line, no traceback. Errors raised by the user's own code
keep their type.

The magics live in one module each (``task``: ``%environment`` and ``%%task``; ``run``: ``%%run``;
``commands``: ``%flyte``), with what they share in ``parsing``; ``FlyteMagics`` joins them into
the one class IPython registers.
"""

from __future__ import annotations

from typing import Any

from .commands import CommandMagics, _run_row
from .run_magic import RunMagics
from .task import TaskMagics

__all__ = ["FlyteMagics", "_run_row", "load_ipython_extension", "unload_ipython_extension"]


class FlyteMagics(TaskMagics, RunMagics, CommandMagics):
    """``%environment``, ``%%task``, ``%%run`` and ``%flyte`` / ``%flyte_nb``."""

    # what @magics_class would set: each part recorded its own magics when it was defined
    registered = True
    magics = {kind: {**TaskMagics.magics[kind], **RunMagics.magics[kind], **CommandMagics.magics[kind]}
              for kind in ("line", "cell")}


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext flyte_nb``: register the magics."""
    ipython.register_magics(FlyteMagics)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext flyte_nb``: remove the magics again."""
    manager = ipython.magics_manager
    instance = manager.registry.pop(FlyteMagics.__name__, None)
    if instance is None:
        return
    for kind, magics in instance.magics.items():
        for name, method in magics.items():
            if manager.magics[kind].get(name) == method:
                del manager.magics[kind][name]
