"""The Jupyter server extension: a small REST API over the run store for the Runs panel.

Routes (under the server's ``base_url``; JSON; Jupyter's token/cookie auth and XSRF apply)::

    GET  flyte-nb/api/runs                       ?status=&notebook=&kernel=&cell=&limit=&before=
    GET  flyte-nb/api/runs/<name>                groups, limits, slot-occupancy timeline, errors
    GET  flyte-nb/api/runs/<name>/actions        ?offset=&limit=&phase=&group=
    GET  flyte-nb/api/runs/<name>/actions/<n>    traceback, attempts, logs, value previews
    POST flyte-nb/api/runs/<name>/abort          {"reason": "..."} → 202; the owning kernel aborts
    GET  flyte-nb/runs/<name>                    redirect to JupyterLab with the run opened
    GET  flyte-nb/reports/<name>/<action>        an action's flyte.report page (sandboxed HTML)

Abort travels through the store (``runs.abort_request``), which the owning kernel's writer
thread polls while it has live runs: it reaches a kernel whose shell is busy, one started by
another server, or a plain Python process alike. See :mod:`flyte_nb.data.writer`.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.utils import url_path_join

from .handlers import (
    AbortHandler,
    ActionHandler,
    ActionsHandler,
    NotFoundHandler,
    OpenRunHandler,
    Reader,
    RunHandler,
    RunsHandler,
)
from .reports import ReportPageHandler

_RUN = r"(?P<name>[^/]+)"


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "flyte_nb.server"}]


def _load_jupyter_server_extension(server_app: Any) -> None:
    web_app = server_app.web_app
    base = url_path_join(web_app.settings["base_url"], "flyte-nb")
    web_app.settings["flyte_nb_reader"] = Reader(server_app.root_dir)
    web_app.add_handlers(".*$", [
        (url_path_join(base, "api/runs"), RunsHandler),
        (url_path_join(base, "api/runs", _RUN), RunHandler),
        (url_path_join(base, "api/runs", _RUN, "actions"), ActionsHandler),
        (url_path_join(base, "api/runs", _RUN, r"actions/(?P<number>[^/]+)"), ActionHandler),  # checked there: a 400
        (url_path_join(base, "api/runs", _RUN, "abort"), AbortHandler),
        (url_path_join(base, "api", ".*"), NotFoundHandler),  # a JSON 404, not the server's HTML page
        (url_path_join(base, "runs", _RUN), OpenRunHandler),
        (url_path_join(base, "reports", _RUN, r"(?P<action>[^/]+)"), ReportPageHandler),
    ])
    server_app.log.info("flyte_nb: Runs API at %sapi/runs", base + "/")
