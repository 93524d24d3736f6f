"""Which kernel recorded a run, and whether it still exists: dead kernels' runs are marked aborted.

A pid alone is not enough (pids are reused), so a process is named by its pid and a token of
its lifetime (boot id + start time); runs are judged only on the host that recorded them.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def _boot_token() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def process_token(pid: int) -> str | None:
    """Identifies one process lifetime (boot id + start time), so a reused pid is not mistaken for it."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        try:
            import psutil
        except ImportError:
            return None
        try:
            return f"psutil:{psutil.Process(pid).create_time()}"
        except Exception:  # noqa: BLE001 - gone, or no access
            return None
    if fields[0] == "Z":  # a zombie has exited; it only waits to be reaped
        return None
    return f"{_boot_token()}:{fields[19]}"


def process_started(pid: int) -> str | None:
    """When ``pid`` started (clock ticks since boot, from /proc): '' where that is unknown, None if it is gone.

    With the pid it names one process lifetime (pids are reused) in docker labels and machine-wide leases.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[19].decode()
    except FileNotFoundError:
        return None
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return ""


HOST = socket.gethostname()
PID = os.getpid()
TOKEN = process_token(PID)


def process_alive(pid: int, token: str | None) -> bool:
    """Whether the kernel that recorded a run still exists on this host."""
    if pid == os.getpid():
        return token is None or token == process_token(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, belongs to someone else
    current = process_token(pid)
    if current is None:  # we can tell processes apart here, yet not this one: a zombie, or just gone
        return TOKEN is None
    return token is None or current == token
