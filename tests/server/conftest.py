"""A real Jupyter server on 127.0.0.1 with the flyte_nb server extension, and a client for it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

TOKEN = "flyte-nb-server-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """Minimal HTTP client: status, JSON body and headers of each request."""

    def __init__(self, url: str, token: str | None = TOKEN) -> None:
        self.url = url
        self.token = token

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                token: bool = True) -> tuple[int, Any, dict[str, str]]:
        data = None if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()  # bytes: as is
        request = urllib.request.Request(f"{self.url}/flyte-nb/api/{path}", data=data, method=method,
                                         headers=dict(headers or {}))
        if token and self.token:
            request.add_header("Authorization", f"token {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw, status, got = response.read(), response.status, dict(response.headers)
        except urllib.error.HTTPError as error:
            raw, status, got = error.read(), error.code, dict(error.headers)
        return status, (json.loads(raw) if raw else None), got

    def get(self, path: str, **kwargs: Any) -> tuple[int, Any, dict[str, str]]:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> tuple[int, Any, dict[str, str]]:
        return self.request("POST", path, body if body is not None else {}, **kwargs)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``jupyter server`` with the extension enabled; its runs live under ``home``."""
    base = tmp_path_factory.mktemp("server")
    root, home = base / "root", base / "flyte_nb"
    root.mkdir()
    env = dict(os.environ, JUPYTER_PLATFORM_DIRS="1", FLYTE_NB_HOME=str(home))
    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR"):
        env[var] = str(base / var.lower())
    port = _free_port()
    log = open(base / "server.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}",
         "--ServerApp.jpserver_extensions=flyte_nb.server=True"],
        stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/flyte-nb/api/runs?token={TOKEN}", timeout=2)
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError(f"jupyter server did not start: {(base / 'server.log').read_text()[-3000:]}")
            time.sleep(0.2)
    yield {"url": url, "root": root, "home": home, "client": Client(url), "log": base / "server.log"}
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@pytest.fixture
def client(server) -> Client:
    return server["client"]


def run_script(home: Path, code: str, *, env: dict[str, str] | None = None, wait: bool = True) -> subprocess.Popen:
    """Run ``code`` in a fresh Python process recording into ``home`` (a kernel stand-in)."""
    process = subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ, FLYTE_NB_HOME=str(home), **(env or {})),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if wait:
        out, _ = process.communicate(timeout=120)
        assert process.returncode == 0, out
    return process
