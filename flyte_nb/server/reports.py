"""Reports (``flyte.report``) for the Lab run view: where an action's report is, and its page.

The page is the HTML a task body wrote, so it is never put into Lab's DOM: the run view shows it
in an ``<iframe sandbox="allow-scripts">``, and the page itself is served with
``Content-Security-Policy: sandbox allow-scripts``, so even opened on its own it runs in an opaque
origin, without Jupyter's cookies, XSRF token or API.
"""

from __future__ import annotations

import sqlite3
from typing import Any
from urllib.parse import quote

import anyio.to_thread
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import JupyterHandler
from tornado import web

from ..data.store import Store
from ..report.reports import read_report, report_path
from . import queries

SANDBOX = "sandbox allow-scripts; frame-ancestors 'self'"


def report_url(run: str, action: str) -> str | None:
    """The page's path under the server's base URL, if the action has a report."""
    if not report_path(run, action).is_file():
        return None
    return f"flyte-nb/reports/{quote(run, safe='')}/{quote(action, safe='')}"


def action_with_report(conn: sqlite3.Connection, store: Store, name: str, number: int) -> dict[str, Any] | None:
    """``queries.action_detail`` plus ``report``: the path of the action's report page, or None."""
    detail = queries.action_detail(conn, store, name, number)
    if detail is not None:
        detail["report"] = report_url(name, str(detail.get("name") or f"a{number}"))
    return detail


class ReportPageHandler(JupyterHandler):
    """``<base_url>flyte-nb/reports/<run>/<action>``: the report page, sandboxed."""

    auth_resource = "flyte-nb"

    @web.authenticated
    @authorized
    async def get(self, name: str, action: str) -> None:
        page = await anyio.to_thread.run_sync(read_report, name, action)
        if page is None:
            raise web.HTTPError(404, f"action {action} of run {name!r} has no report")
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Content-Security-Policy", SANDBOX)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "no-store")
        self.finish(page)
