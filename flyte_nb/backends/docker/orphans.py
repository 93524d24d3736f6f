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
    for folder in Path(tempfile.gettempdir()).glob("flyte_nb-docker-*"):
        parts = folder.name.split("-")
        if len(parts) >= 4 and not _kernel_alive(parts[2], parts[3]):
            shutil.rmtree(folder, ignore_errors=True)
    return removed


def _our_containers(client: Any) -> list[Any]:
    return client.containers.list(all=True, filters={"label": [f"{LABEL}.kernel={_KERNEL}"]})
