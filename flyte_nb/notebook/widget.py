"""The live run widget (an anywidget whose ES module ships in the package).

Updates are coalesced: engine events only mark the widget dirty and note recent results; at most
``MAX_RATE`` times a second the engine thread sends one fresh snapshot. After construction only
the engine thread mutates the widget (``hold_sync`` and trait writes are not thread-safe), and it
does so in the context of the cell that started the run, so ipykernel routes the messages there.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from ..api.run import Run
from ..engine.action import Phase
from ..engine.events import Event, EventKind
from ..engine.loop import engine
from ..report import reports
from .widget_state import Recent, snapshot, summary_line
from .summary_html import summary_html

MAX_RATE = 10.0  # snapshots per second, whatever the number of actions
_HERE = Path(__file__).parent


class RunWidget(anywidget.AnyWidget):
    """Header, slot pools, group progress, recent results and errors, and a Cancel button."""

    _esm = (_HERE / "widget.js").read_text()
    _css = (_HERE / "widget.css").read_text()
    state = traitlets.Dict().tag(sync=True)

    def __init__(self, run: Run, **kwargs: Any) -> None:
        self._run = run
        self._recent = Recent(run.state)
        self._scheduled = False
        self._last_flush = 0.0
        self.flushes = 0
        self._reports: dict[str, dict[str, Any]] = {}  # action → what the Reports section lists
        super().__init__(state=dict(snapshot(run.state, self._recent), reports=[]), **kwargs)
        self.on_msg(self._on_message)
        engine().call_soon(self._attach)

    # ------------------------------------------------------------ engine thread
    def _attach(self) -> None:
        state = self._run.state
        for report in reports.open_reports(state.name):
            self._report_changed(report)
        if state.done.done():
            self._flush()
            return
        state.listeners.append(self._on_event)
        reports.report_listeners().append(self._on_report)

    def _on_report(self, report: reports.Report) -> None:
        """Any thread (a sync body's): a report changed; the widget hears of it on the engine thread."""
        if report.run == self._run.state.name:
            engine().loop.call_soon_threadsafe(self._report_changed, report)

    def _report_changed(self, report: reports.Report) -> None:
        action = report.action or ""
        self._reports[action] = {"action": action, "task": report.name, "version": report.version,
                                 "tabs": [name for name, tab in report.tabs.items() if tab.content or name != "main"]}
        self._schedule()

    def _on_event(self, event: Event) -> None:
        if event.kind is EventKind.ACTION:
            if event.phase in (Phase.SUCCEEDED, Phase.CACHED) and event.action.parent is not None:
                self._recent.add_result(event.action, event.data)
            elif event.phase in (Phase.FAILED, Phase.TIMED_OUT):
                self._recent.errors.append(event.action)
        elif event.kind is EventKind.RUN_FINISHED:
            event.run.listeners.remove(self._on_event)
            if self._on_report in reports.report_listeners():
                reports.report_listeners().remove(self._on_report)
            self._flush()  # the final counts, at once
            return
        self._schedule()

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            delay = max(0.0, self._last_flush + 1.0 / MAX_RATE - time.monotonic())
            engine().loop.call_later(delay, self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        self._last_flush = time.monotonic()
        self.flushes += 1
        fresh = snapshot(self._run.state, self._recent)
        fresh["reports"] = sorted(self._reports.values(), key=lambda r: int(r["action"][1:] or 0))
        context = self._run.state.context
        if context is not None:
            context.run(setattr, self, "state", fresh)
        else:
            self.state = fresh

    # ------------------------------------------------------------ kernel thread
    def _on_message(self, _widget: Any, content: dict[str, Any], _buffers: Any) -> None:
        kind = content.get("type")
        if kind == "abort":
            self._run.abort(reason="cancelled from the widget", wait=None)
        elif kind == "output":
            name = str(content.get("action", ""))
            try:
                text = self._run.action(name).logs
            except KeyError:
                text = f"(no action {name})"
            self.send({"type": "output", "action": name, "text": text or "(no output)"})
        elif kind == "report":
            name = str(content.get("action", ""))
            page = reports.read_report(self._run.name, name) or f"<p>(no report for action {name})</p>"
            self.send({"type": "report", "action": name, "html": page})

    # ------------------------------------------------------------------ reprs
    def __repr__(self) -> str:
        return summary_line(self.state)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        if isinstance(data, dict):
            data["text/html"] = summary_html(self.state)
        return bundle
