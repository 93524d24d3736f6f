"""No orphans: remove what kernels that died on this host left behind, and find our own containers."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from .daemon import _HOST, _KERNEL, LABEL, _kernel_alive


def remove_orphans(client: Any) -> int:
    """Remove containers and temp folders that kernels which died on this host left behind."""
    removed = 0
    for container in client.containers.list(all=True, filters={"label": [f"{LABEL}.kernel.host={_HOST}"]}):
        labels = container.labels
        if _kernel_alive(labels.get(f"{LABEL}.kernel.pid", ""), labels.get(f"{LABEL}.kernel.started", "")):
            continue
        try:
            container.remove(force=True)
            removed += 1
        except Exception:  # noqa: BLE001 - already gone
            pass
    for folder in folder_root().glob("flyte_nb-docker-*"):
        parts = folder.name.split("-")
        if len(parts) >= 4 and not _kernel_alive(parts[2], parts[3]):
            shutil.rmtree(folder, ignore_errors=True)
    return removed


def _our_containers(client: Any) -> list[Any]:
    return client.containers.list(all=True, filters={"label": [f"{LABEL}.kernel={_KERNEL}"]})


_SOCKET_ROOM = 60  # what the kernel's folder adds below the root: "/flyte_nb-docker-PID-START/reuse-N/rM.sock"


def folder_root() -> Path:
    """Where this kernel's docker folder lives: the temp folder, unless it is too deep for unix sockets.

    A socket path may hold at most 107 bytes (AF_UNIX); under a long TMPDIR the folder goes to /tmp.
    """
    temp = Path(tempfile.gettempdir())
    return temp if len(str(temp)) + _SOCKET_ROOM <= 107 else Path("/tmp")
