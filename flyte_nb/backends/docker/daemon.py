"""The Docker daemon: connecting to it, and the labels that say which kernel owns a container.

Every container carries its kernel's identity (host, pid, process start time) so that a later
kernel can tell a dead owner from a live one (``orphans``) and this kernel can find its own.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from ...data.processes import process_started
from ...errors import ConfigurationError

BASE_IMAGE = os.environ.get("FLYTE_NB_BASE_IMAGE", "flyte-nb-base:bookworm")
LABEL = "flyte_nb"  # every container of ours carries flyte_nb=1


_PID = os.getpid()
_HOST = socket.gethostname()
_STARTED = process_started(_PID) or ""
_KERNEL = f"{_HOST}:{_PID}:{_STARTED}"


def _kernel_alive(pid: str, started: str) -> bool:
    try:
        now = process_started(int(pid))
    except ValueError:
        return False
    return now is not None and (not started or not now or now == started)


def _labels(**extra: str) -> dict[str, str]:
    return {LABEL: "1", f"{LABEL}.kernel": _KERNEL, f"{LABEL}.kernel.host": _HOST,
            f"{LABEL}.kernel.pid": str(_PID), f"{LABEL}.kernel.started": _STARTED, **extra}


def _connect() -> Any:
    """A docker client for ``DOCKER_HOST`` (or the default socket), or a one-line error saying what to do."""
    import docker

    where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    client = None
    try:
        if where.startswith("unix://"):  # probe it ourselves: the SDK leaks its socket when the connect fails
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.settimeout(10)
                probe.connect(where[len("unix://"):])
        client = docker.from_env(max_pool_size=64, timeout=120)
        client.ping()
    except Exception as error:  # noqa: BLE001 - every failure to connect reads the same to the user
        if client is not None:
            client.close()
        reason = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
        raise ConfigurationError(f"the Docker daemon at {where} is not reachable ({reason}); start it with "
                                 "scripts/docker-setup or `dockerd &`, or point DOCKER_HOST at a running daemon") from None
    return client
