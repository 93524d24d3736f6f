"""Report helpers from the SDK: ``Timeline`` rows, ``abbreviate`` long values, ``duration_ms``."""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any

_FULL = 20_000


def abbreviate(value: Any, limit: int = 300) -> str:
    """``value`` escaped; past ``limit`` characters it folds into a ``<details>`` that opens in place."""
    text = "" if value is None else str(value)
    if len(text) <= limit:
        return html.escape(text)
    more = f"\n... (+{len(text) - _FULL} more)" if len(text) > _FULL else ""
    return (f"<details><summary>{html.escape(text[:limit])}... (+{len(text) - limit})</summary>"
            f"<pre>{html.escape(text[:_FULL])}{more}</pre></details>")


def duration_ms(start_iso: Any, end_iso: Any) -> str:
    """``"<n> ms"`` between two ISO-8601 times, or ``""`` when either is missing or unreadable."""
    if not start_iso or not end_iso:
        return ""
    try:
        start = datetime.fromisoformat(str(start_iso).replace("Z", "+00:00"))
        end = datetime.fromisoformat(str(end_iso).replace("Z", "+00:00"))
    except ValueError:
        return ""
    return f"{(end - start).total_seconds() * 1000:.0f} ms"


class Timeline:
    """Rows appended to a tab of the running action's report."""

    def __init__(self, tab_name: str = "main") -> None:
        self._tab_name = tab_name

    def heading(self, text: Any) -> None:
        self._log(f"<h3>{html.escape(str(text))}</h3>")

    def row(self, *, icon: str = "•", label: Any = "", meta: str = "", detail: str = "", error: Any = None) -> None:
        problem = f' <span style="color:#d33">⚠ {abbreviate(error, 200)}</span>' if error else ""
        self._log(f"<div>{icon} <b>{html.escape(str(label))}</b> <span style='opacity:.6'>{html.escape(meta)}</span>"
                  f"{(' — ' + detail) if detail else ''}{problem}</div>")

    def _log(self, content: str) -> None:
        from . import get_tab

        get_tab(self._tab_name).log(content)
