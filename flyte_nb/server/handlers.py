"""Tornado handlers of the REST API (``<base_url>flyte-nb/api/...``), behind Jupyter's auth.

Every handler is ``authenticated`` and ``authorized`` (resource ``flyte-nb``); POST goes through
Jupyter's XSRF check. Store work runs in a worker thread (``anyio.to_thread``): a query over a
large run must not stall the server's event loop. Tornado answers an unchanged GET with 304 from
its ETag, so a polling panel costs one query and no transfer.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from tornado import web

from ..data.store import Store, get_store
from ..errors import StoreError
from . import queries
from .reports import action_with_report

T = TypeVar("T")
REAP_EVERY = 5.0  # seconds between checks for runs of kernels that died
MAX_LIMIT = 500
SQLITE_MAX = 2**63 - 1  # the largest INTEGER SQLite binds: beyond it a query fails, so such input is refused


def whole_number(name: str, raw: str, low: int, high: int | None = None) -> int:
    """``raw`` as an int within ``[low, high]`` (at most SQLite's range), else a 400 that says what to send."""
    high = SQLITE_MAX if high is None else min(high, SQLITE_MAX)
    try:
        value = int(raw) if len(raw) <= 20 else None  # longer than any int SQLite holds: refused without parsing
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        bounds = f"between {low} and {high}"
        raise web.HTTPError(400, f"{name} must be a whole number {bounds}, got {raw[:40]!r}")
    return value


class Reader:
    """The server's view of one run store: paths relative to the server root, dead kernels reaped."""

    def __init__(self, root_dir: str, store: Store | None = None) -> None:
        self.paths = queries.Paths(root_dir)
        self._store = store
        self._reaped = 0.0

    @property
    def store(self) -> Store:
        return self._store or get_store()  # FLYTE_NB_HOME of the server, as its kernels inherit it

    def read(self, query: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        store = self.store
        if time.monotonic() - self._reaped > REAP_EVERY:
            self._reaped = time.monotonic()
            store.reap()
        with store.reading() as conn:
            return query(conn, *args, **kwargs)


class _Base(APIHandler):
    auth_resource = "flyte-nb"

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """Refusals carry a finished message (no %-args): log it as is, without a traceback."""
        if isinstance(value, web.HTTPError):
            self.log.info("%d %s: %s", value.status_code, self._request_summary(), value.log_message)
        else:
            super().log_exception(typ, value, tb)

    @property
    def reader(self) -> Reader:
        return self.settings["flyte_nb_reader"]

    async def answer(self, query: Callable[..., Any], *args: Any, missing: str | None = None, run: str | None = None,
                     **kwargs: Any) -> None:
        """Answer with ``query``'s result as JSON. For an answer about ``run``, the ETag comes first
        from the run's version (one indexed read): an unchanged run is a 304 before any heavy query."""
        try:
            if run is not None and self._unchanged(await anyio.to_thread.run_sync(
                    lambda: self.reader.read(queries.run_version, run))):
                return
            result = await anyio.to_thread.run_sync(lambda: self.reader.read(query, *args, **kwargs))
        except StoreError as error:
            raise web.HTTPError(503, str(error)) from error
        if result is None:
            raise web.HTTPError(404, missing or "not found")
        self.finish(json.dumps(result))

    def _unchanged(self, version: str | None) -> bool:
        """Set the ETag from the run's version (and this URL); answer 304 if the client has it."""
        if version is None:
            return False
        live = version.split("-")[1] in queries.LIVE_PHASES
        tick = f"-{int(time.time())}" if live else ""  # a live run's durations move on: at most once a second
        digest = hashlib.sha1(f"{version}{tick} {self.request.uri}".encode()).hexdigest()[:20]
        self.set_header("Etag", f'"{digest}"')
        if not self.check_etag_header():
            return False
        self.set_status(304)
        self.finish()
        return True

    def int_argument(self, name: str, default: int | None, low: int, high: int | None = None) -> int | None:
        raw = self.get_argument(name, None)
        if raw is None or raw == "":
            return default
        return whole_number(name, raw, low, high)

    def choice(self, name: str, choices: tuple[str, ...]) -> str | None:
        value = self.get_argument(name, None) or None
        if value is not None and value not in choices:
            raise web.HTTPError(400, f"{name} must be one of {', '.join(choices)}, got {value!r}")
        return value


def _unknown(name: str) -> str:
    return f"no run named {name!r} in the run store"


class RunsHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        await self.answer(queries.list_runs, self.reader.paths, status=self.choice("status", queries.STATUSES),
                          notebook=self.get_argument("notebook", None), kernel=self.get_argument("kernel", None),
                          cell=self.get_argument("cell", None), limit=self.int_argument("limit", 50, 1, MAX_LIMIT),
                          before=self.int_argument("before", None, 0))


class RunHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        await self.answer(queries.run_detail, self.reader.paths, name, missing=_unknown(name), run=name)


class ActionsHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        await self.answer(queries.list_actions, name, offset=self.int_argument("offset", 0, 0),
                          limit=self.int_argument("limit", 100, 1, MAX_LIMIT),
                          phase=self.choice("phase", queries.ACTION_PHASES), group=self.get_argument("group", None),
                          after=self.int_argument("after", None, -1), before=self.int_argument("before", None, 0),
                          missing=_unknown(name), run=name)


class ActionHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self, name: str, number: str) -> None:
        await self.answer(action_with_report, self.reader.store, name, whole_number("action number", number, 0),
                          missing=f"run {name!r} has no action number {number}", run=name)


class AbortHandler(_Base):
    @web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        body = self.request.body.strip()
        try:
            reason = json.loads(body).get("reason") if body else None
        except (ValueError, AttributeError):
            raise web.HTTPError(400, 'the body must be JSON like {"reason": "..."} (or empty)') from None
        user = getattr(self.current_user, "username", None)
        reason = str(reason) if reason else f"aborted from the Runs panel{f' by {user}' if user else ''}"
        store = self.reader.store
        try:
            was_live, phase = await anyio.to_thread.run_sync(lambda: store.request_abort(name, reason))
        except KeyError:
            raise web.HTTPError(404, _unknown(name)) from None
        except StoreError as error:
            raise web.HTTPError(503, str(error)) from error
        if not was_live:
            raise web.HTTPError(409, f"run {name} already ended ({phase}): there is nothing to abort")
        self.set_status(202)
        self.finish(json.dumps({"name": name, "phase": phase, "requested": True}))


class NotFoundHandler(_Base):
    """Any other path under the API: a JSON 404 that lists the routes (the panel and scripts parse JSON)."""

    @web.authenticated
    @authorized
    def prepare_404(self) -> None:
        raise web.HTTPError(404, "no such flyte-nb API route: see GET api/runs, api/runs/<name>, "
                                 "api/runs/<name>/actions, api/runs/<name>/actions/<n>, POST api/runs/<name>/abort")

    get = post = put = delete = patch = prepare_404


class OpenRunHandler(JupyterHandler):
    """``<base_url>flyte-nb/runs/<name>``: what ``Run.url`` points at; JupyterLab opens the run."""

    auth_resource = "flyte-nb"

    @web.authenticated
    @authorized
    def get(self, name: str) -> None:
        from urllib.parse import quote

        self.redirect(f"{self.base_url}lab?flyte-nb-run={quote(name, safe='')}")
