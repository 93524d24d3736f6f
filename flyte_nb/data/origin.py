"""Where a run was started: the notebook, Jupyter kernel and cell, for the Runs panel.

The Jupyter server knows sessions and kernels, not runs; the kernel knows runs, not which panel
shows them. Recording the origin with each run lets the server extension filter runs by notebook,
open the notebook that started a run, and find the run of the current cell. Everything here is
best effort: outside Jupyter (a script, pytest) each field is ``None``.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import NamedTuple


class Origin(NamedTuple):
    notebook: str | None  # absolute path of the notebook (jupyter_server sets JPY_SESSION_NAME)
    kernel: str | None  # Jupyter kernel id, from the connection file name
    cell: str | None  # JupyterLab/Notebook 7 send the cell's id in the execute request's metadata


_KERNEL_FILE = re.compile(r"kernel-([0-9a-fA-F-]{8,})\.json$")
_kernel_id: tuple[str | None] | None = None  # computed once: a kernel never changes its id


def kernel_id() -> str | None:
    """The Jupyter kernel id of this process, or ``None`` when it is not a Jupyter kernel."""
    global _kernel_id
    if _kernel_id is None:
        found = None
        app = getattr(sys.modules.get("ipykernel.kernelapp"), "IPKernelApp", None)
        if app is not None and app.initialized():  # a launched kernel (only importing ipykernel costs ~0.3 s)
            try:
                from ipykernel.connect import get_connection_file

                match = _KERNEL_FILE.search(get_connection_file())
                found = match.group(1) if match else None
            except Exception:  # noqa: BLE001 - no kernel app running (imported, not launched)
                found = None
        _kernel_id = (found,)
    return _kernel_id[0]


def cell_id() -> str | None:
    """The id of the cell being executed on this (the kernel's shell) thread, if any.

    Only a process that already imported IPython can have a shell: importing it here would cost a
    script or a test its first run (~0.2 s) to learn that there is none.
    """
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    if get_ipython is None:
        return None
    shell = get_ipython()
    kernel = getattr(shell, "kernel", None)
    if kernel is None:
        return None
    try:
        parent = kernel.get_parent()
    except Exception:  # noqa: BLE001 - older ipykernel signatures
        return None
    metadata = parent.get("metadata") if isinstance(parent, dict) else None
    cell = metadata.get("cellId") if isinstance(metadata, dict) else None
    return cell if isinstance(cell, str) else None


def current() -> Origin:
    notebook = os.environ.get("JPY_SESSION_NAME") or None
    return Origin(notebook, kernel_id(), cell_id())


_server: tuple[str | None] | None = None


def server_url() -> str | None:
    """Base URL of the Jupyter server that started this kernel (its parent process), if any.

    Read from the servers' runtime files (``jupyter server list``) once, when a ``Run.url`` is
    first asked for; a kernel outlives no server change worth tracking.
    """
    global _server
    if _server is None:
        found = None
        try:
            from jupyter_server.serverapp import list_running_servers

            servers = list(list_running_servers())
        except Exception:  # noqa: BLE001 - no jupyter_server here, or unreadable runtime files
            servers = []
        parent = os.getppid()
        for info in servers:
            if info.get("pid") == parent:
                found = info.get("url")
        if found is None and len(servers) == 1 and os.environ.get("JPY_SESSION_NAME"):
            found = servers[0].get("url")  # a kernel started through a provisioner: not our parent
        _server = (found if found is None or found.endswith("/") else found + "/",)
    return _server[0]


def run_url(name: str, store_path: Path) -> str:
    """Where run ``name`` can be looked at: the Runs panel of this kernel's Jupyter server, or the store."""
    from urllib.parse import quote

    server = server_url()
    if server is not None:
        return f"{server}flyte-nb/runs/{quote(name, safe='')}"
    return f"{store_path.as_uri()}#run={quote(name, safe='')}"
