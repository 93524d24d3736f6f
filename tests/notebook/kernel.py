"""A real Jupyter kernel for tests: start it sandboxed, execute code, collect what it published."""

from __future__ import annotations

import os
import queue
import textwrap
import time
from pathlib import Path
from typing import Any

from jupyter_client.manager import KernelManager

_SANDBOX = {
    "JUPYTER_CONFIG_DIR": "config", "JUPYTER_DATA_DIR": "data", "JUPYTER_RUNTIME_DIR": "runtime",
    "JUPYTERLAB_SETTINGS_DIR": "lab-settings", "JUPYTERLAB_WORKSPACES_DIR": "lab-workspaces",
    "IPYTHONDIR": "ipython", "XDG_CACHE_HOME": "cache", "XDG_CONFIG_HOME": "xdg-config",
    "npm_config_cache": "npm", "FLYTE_NB_HOME": "flyte_nb",
}


class Outputs(list):
    """Every iopub message of one execute request (but its status messages), with the reply."""

    msg_id: str = ""
    status: str = ""
    error: dict[str, Any] | None = None  # ename, evalue, traceback when the cell raised
    seconds: float = 0.0  # execute_request sent → kernel idle again

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self)

    def _stream(self, name: str) -> str:
        return "".join(m["content"]["text"] for m in self if m["msg_type"] == "stream" and m["content"]["name"] == name)

    @property
    def stdout(self) -> str:
        return self._stream("stdout")

    @property
    def stderr(self) -> str:
        return self._stream("stderr")

    def data(self, mime: str) -> list[Any]:
        return [m["content"]["data"][mime] for m in self
                if m["msg_type"] in ("display_data", "execute_result") and mime in m["content"]["data"]]

    @property
    def result(self) -> str | None:
        """The text/plain of the cell's own result (``Out[n]``), if any."""
        return next((m["content"]["data"]["text/plain"] for m in self if m["msg_type"] == "execute_result"), None)

    @property
    def text(self) -> str:
        """Everything shown, as text (streams, plain-text data, error tracebacks)."""
        parts = []
        for m in self:
            content = m["content"]
            if m["msg_type"] == "stream":
                parts.append(content["text"])
            elif m["msg_type"] in ("display_data", "execute_result"):
                parts.append(content["data"].get("text/plain", ""))
            elif m["msg_type"] == "error":
                parts.extend(content["traceback"])
        return "\n".join(parts)


class Kernel:
    """One ipykernel with its Jupyter, IPython and flyte_nb files under ``home``."""

    def __init__(self, home: Path, env: dict[str, str] | None = None, kernel_id: str | None = None) -> None:
        """``env`` adds to the kernel's environment; ``kernel_id`` names its connection file as Jupyter does."""
        env = dict(os.environ, JUPYTER_PLATFORM_DIRS="1", **(env or {}))
        env.update({var: str(home / sub) for var, sub in _SANDBOX.items()})
        connection = f"kernel-{kernel_id}.json" if kernel_id else "kernel.json"
        self.manager = KernelManager(kernel_name="python3", connection_file=str(home / connection))
        self.manager.start_kernel(env=env, cwd=str(home))
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)
        self.backlog: list[dict[str, Any]] = []  # iopub messages of earlier requests that came late

    def execute(self, code: str, timeout: float = 60, interrupt_after: float | None = None,
                metadata: dict[str, Any] | None = None) -> Outputs:
        """Run ``code``; ``metadata`` rides on the request as JupyterLab's does (``cellId``)."""
        start = time.perf_counter()
        code = textwrap.dedent(code).strip("\n") + "\n"
        if metadata is None:
            msg_id = self.client.execute(code)
        else:
            content = {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                       "allow_stdin": False, "stop_on_error": True}
            request = self.client.session.msg("execute_request", content, metadata=metadata)
            self.client.shell_channel.send(request)
            msg_id = request["header"]["msg_id"]
        if interrupt_after is not None:
            time.sleep(interrupt_after)
            self.manager.interrupt_kernel()
        outputs = Outputs()
        outputs.msg_id = msg_id
        deadline = time.monotonic() + timeout
        while True:
            msg = self.client.get_iopub_msg(timeout=max(0.01, deadline - time.monotonic()))
            if msg["parent_header"].get("msg_id") != msg_id:
                self.backlog.append(msg)
                continue
            if msg["msg_type"] == "status":
                if msg["content"]["execution_state"] == "idle":
                    break
                continue
            outputs.append(msg)
        outputs.seconds = time.perf_counter() - start
        while True:
            reply = self.client.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        content = reply["content"]
        outputs.status = content["status"]
        if content["status"] != "ok":
            outputs.error = {k: content.get(k) for k in ("ename", "evalue", "traceback")}
        return outputs

    def call(self, code: str, timeout: float = 60, interrupt_after: float | None = None) -> tuple[Outputs, dict[str, Any] | None]:
        """Run ``code``; its outputs, and the error (``ename``, ``evalue``, ``traceback``) or None."""
        outputs = self.execute(code, timeout, interrupt_after)
        return outputs, outputs.error

    def ok(self, code: str, timeout: float = 60, metadata: dict[str, Any] | None = None) -> Outputs:
        outputs = self.execute(code, timeout, metadata=metadata)
        assert outputs.error is None, f"{outputs.error['ename']}: {outputs.error['evalue']}\n{outputs.text}"
        return outputs

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

    def close(self, graceful: bool = False) -> None:
        """Stop the kernel: killed at once by default (fast); ``graceful`` as Jupyter's shutdown does (exit hooks run)."""
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=not graceful)
