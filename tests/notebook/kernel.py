"""A real Jupyter kernel for tests: start it, execute code, collect what it published."""

from __future__ import annotations

import os
import queue
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.manager import KernelManager


@dataclass
class Reply:
    """What one execute request produced."""

    msg_id: str
    status: str
    seconds: float
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def stdout(self) -> str:
        return "".join(m["content"]["text"] for m in self.messages
                       if m["msg_type"] == "stream" and m["content"]["name"] == "stdout")

    @property
    def error(self) -> dict[str, Any] | None:
        return next((m["content"] for m in self.messages if m["msg_type"] == "error"), None)

    def data(self, mime: str) -> list[Any]:
        return [m["content"]["data"][mime] for m in self.messages
                if m["msg_type"] in ("display_data", "execute_result") and mime in m["content"]["data"]]


class Kernel:
    """One ipykernel process with its Jupyter and flyte_nb files in ``home``."""

    def __init__(self, home: Path) -> None:
        env = dict(os.environ)
        for var, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                         ("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython"), ("FLYTE_NB_HOME", "flyte_nb")):
            env[var] = str(home / sub)
        env["JUPYTER_PLATFORM_DIRS"] = "1"
        self.manager = KernelManager(kernel_name="python3")
        self.manager.start_kernel(env=env, cwd=str(home))
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)
        self.backlog: list[dict[str, Any]] = []  # iopub messages of earlier requests that came late

    def execute(self, code: str, timeout: float = 60) -> Reply:
        start = time.perf_counter()
        msg_id = self.client.execute(code)
        reply = Reply(msg_id, "", 0.0)
        deadline = time.monotonic() + timeout
        while True:
            msg = self.client.get_iopub_msg(timeout=max(0.01, deadline - time.monotonic()))
            if msg["parent_header"].get("msg_id") != msg_id:
                self.backlog.append(msg)
                continue
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
            reply.messages.append(msg)
        reply.seconds = time.perf_counter() - start
        shell = self.client.get_shell_msg(timeout=timeout)
        reply.status = shell["content"]["status"]
        return reply

    def drain(self, seconds: float) -> list[dict[str, Any]]:
        """Every iopub message published during the next ``seconds`` (plus the backlog)."""
        messages, self.backlog = self.backlog, []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                messages.append(self.client.get_iopub_msg(timeout=left))
            except queue.Empty:
                break
        return messages

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)
