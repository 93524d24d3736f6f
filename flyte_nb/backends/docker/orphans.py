"""No orphans: remove what kernels that died on this host left behind, and find our own containers."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from .daemon import _HOST, _KERNEL, LABEL, _kernel_alive


def remove_orphans(client: Any) -> int:
    """Remove containers and temp folders that kernels which died on this host left behind."""
    removed = 0
    ours = {"label": [f"{LABEL}.kernel.host={_HOST}"]}
    for container in client.containers.list(all=True, filters=ours, ignore_removed=True):
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
    # ignore_removed: a container removed between the listing and its inspection is no error (it is gone)
    return client.containers.list(all=True, filters={"label": [f"{LABEL}.kernel={_KERNEL}"]}, ignore_removed=True)


def remove_ours(client: Any, rounds: int = 10) -> None:
    """Remove every container of this kernel, looking again until none is left (at most ``rounds`` passes).

    A removal can fail while the container is exiting on its own, or while containers that share
    its network namespace are being removed; the next pass, 0.2 s later, finds it.
    """
    for attempt in range(rounds):
        try:
            left = _our_containers(client)
        except Exception:  # noqa: BLE001 - the daemon went away first
            return
        if not left:
            return
        if attempt:
            time.sleep(0.2)
        for container in left:
            try:
                container.remove(force=True)
            except Exception:  # noqa: BLE001 - gone already, or found again next pass
                pass


_SOCKET_ROOM = 60  # what the kernel's folder adds below the root: "/flyte_nb-docker-PID-START/reuse-N/rM.sock"


def folder_root() -> Path:
    """Where this kernel's docker folder lives: the temp folder, unless it is too deep for unix sockets.

    A socket path may hold at most 107 bytes (AF_UNIX); under a long TMPDIR the folder goes to /tmp.
    """
    temp = Path(tempfile.gettempdir())
    return temp if len(str(temp)) + _SOCKET_ROOM <= 107 else Path("/tmp")
