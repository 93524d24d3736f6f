"""A static HTML summary of a run, for nbconvert and frontends without widgets (no times: stable)."""

from __future__ import annotations

from html import escape
from typing import Any


def _under(group: dict[str, Any]) -> str:
    """Where a group made below the driver sits in the action tree."""
    if group.get("depth", 1) <= 1 or not group.get("parent"):
        return ""
    return escape(f" (in {group['parent']} {group['parent_task']})")


def summary_html(state: dict[str, Any]) -> str:
    counts = "".join(
        f'<span class="flyte-nb-chip flyte-nb-{escape(p)}">{n} {escape(p)}</span> '
        for p, n in state["counts"].items() if n
    )
    rows = "".join(
        f"<tr><td>{escape(g['name'])}{_under(g)}</td><td>{g['succeeded']}</td><td>{g['failed']}</td>"
        f"<td>{g['running']}</td><td>{g['queued']}</td><td>{'' if g['total'] is None else g['total']}</td></tr>"
        for g in state["groups"]
    )
    groups = (
        "<table><tr><th>group</th><th>succeeded</th><th>failed</th><th>running</th><th>queued</th><th>total</th></tr>"
        f"{rows}</table>" if rows else ""
    )
    error = f"<pre>{escape(state['error'])}</pre>" if state.get("error") else ""
    return (
        f'<div class="flyte-nb-summary"><b>Run {escape(state["name"])}</b>: {escape(state["phase"])} '
        f"{counts}{groups}{error}</div>"
    )
