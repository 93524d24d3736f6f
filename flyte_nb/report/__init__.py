"""``flyte.report``: HTML reports per action (``log``, ``replace``, ``flush``, tabs), kept under the home."""

from __future__ import annotations

from .reports import Report, Tab, current_report, flush, get_tab, log, replace, report_path, reports_of, show
from .widgets import Timeline, abbreviate, duration_ms

__all__ = ["Report", "Tab", "Timeline", "abbreviate", "current_report", "duration_ms", "flush", "get_tab", "log",
           "replace", "report_path", "reports_of", "show"]
