"""Per-action HTML reports (``flyte.report``): tabs of HTML that a task body logs to.

Each action has its own report. Every change is written at once to
``FLYTE_NB_HOME/reports/RUN/ACTION.html`` (one small local write), so a report outlives the
kernel like the run store does, ``flush`` has nothing left to do, and
``flyte_nb.report.show(run)`` renders a run's reports in the notebook. Outside a task the
report is a throwaway, as in the SDK.

A body in a worker (process, container, Dask) keeps a copy of its report and sends each change
to the kernel as a note; the kernel applies it to the action's report there, so it is written,
shown and served exactly like a report made in the kernel.
"""

from __future__ import annotations

import html
import pathlib
from dataclasses import dataclass, field
from typing import Any

from ..data.home import home_dir
from ..data.pickling import by_value, loads
from ..engine.action import Action
from ..engine.attempt_state import register, send_note, whoami
from ..engine.kernel import Recent, kernel

MAIN = "main"

_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:12px}} .flyte-report-tabs>input{{position:absolute;opacity:0}}
.flyte-report-tabs>label{{display:inline-block;padding:4px 12px;margin-right:4px;border:1px solid #ccc;
border-bottom:none;border-radius:4px 4px 0 0;cursor:pointer;background:#f4f4f4}}
.flyte-report-tabs>section{{display:none;border-top:1px solid #ccc;padding:8px 0}}
{rules}</style></head>
<body><div class="flyte-report-tabs">{tabs}{body}</div></body></html>"""
_RULE = ("#flyte-tab-{i}:checked~section.flyte-tab-{i}{{display:block}}"
         " #flyte-tab-{i}:checked+label{{background:#fff;font-weight:bold}}")


@dataclass
class Tab:
    """One tab: HTML fragments in the order they were logged."""

    name: str
    content: list[str] = field(default_factory=list, init=False)
    report: Report | None = field(default=None, repr=False, compare=False)

    def log(self, content: str) -> None:
        self.content.append(content)
        self._changed("log", content)

    def replace(self, content: str) -> None:
        self.content = [content]
        self._changed("replace", content)

    def get_html(self) -> str:
        return "\n".join(self.content)

    def _changed(self, op: str, content: str) -> None:
        if self.report is not None:
            self.report.changed(self.name, op, content)


@dataclass
class Report:
    """The report of one action: named tabs, ``main`` first."""

    name: str
    tabs: dict[str, Tab] = field(default_factory=dict)
    path: pathlib.Path | None = None  # where it is kept; None for the throwaway outside tasks
    remote: bool = False  # in a worker: changes go to the kernel, which keeps the report
    run: str | None = None  # whose report it is (None for the throwaway)
    action: str | None = None
    version: int = 0  # changes so far: a view redraws when it moves

    def __post_init__(self) -> None:
        self.tabs.setdefault(MAIN, Tab(MAIN, report=self))

    def has_content(self) -> bool:
        return any(tab.content for tab in self.tabs.values())

    def get_tab(self, name: str, create_if_missing: bool = True) -> Tab:
        if name not in self.tabs:
            if not create_if_missing:
                raise ValueError(f"Tab {name} does not exist.")
            self.tabs[name] = Tab(name, report=self)
        return self.tabs[name]

    def get_final_report(self) -> str:
        """The report as one HTML page: its tabs switch with CSS alone (no script), so the page works
        in a sandboxed frame; an empty ``main`` is left out."""
        shown = [tab for name, tab in self.tabs.items() if tab.content or name != MAIN]
        tabs = "".join(f'<input type="radio" name="flyte-tab" id="flyte-tab-{i}"{" checked" if i == 0 else ""}>'
                       f'<label for="flyte-tab-{i}">{html.escape(tab.name)}</label>' for i, tab in enumerate(shown))
        body = "".join(f'<section class="flyte-tab-{i}" data-tab="{html.escape(tab.name)}">{tab.get_html()}</section>'
                       for i, tab in enumerate(shown))
        rules = "\n".join(_RULE.format(i=i) for i in range(len(shown)))
        return _PAGE.format(title=html.escape(self.name), tabs=tabs, body=body, rules=rules)

    def changed(self, tab: str, op: str, content: str) -> None:
        if self.remote:
            send_note("report", by_value((tab, op, content)))
        else:
            self.version += 1
            self.save()
            for listener in tuple(report_listeners()):
                listener(self)

    def save(self) -> None:
        if self.path is not None and self.has_content():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_suffix(".partial")
            partial.write_text(self.get_final_report(), encoding="utf-8")
            partial.replace(self.path)


def report_path(run: str, action: str) -> pathlib.Path:
    return home_dir() / "reports" / run / f"{action}.html"


class _ReportListeners(list):
    """Called with a kernel-side ``Report`` after each change (the notebook widget shows reports live)."""


def report_listeners() -> list[Any]:
    """This kernel's report listeners (append to hear every report change)."""
    return kernel().part(_ReportListeners)


class _OpenReports(Recent[tuple[str, str], Report]):
    """The reports of the newest actions, by (run, action)."""


def _report(run: str, action: str, task: str, remote: bool = False) -> Report:
    return kernel().part(_OpenReports).get_or_make((run, action), lambda: Report(
        f"{task} ({action})", path=None if remote else report_path(run, action), remote=remote, run=run, action=action))


def open_reports(run: str) -> list[Report]:
    """The reports of ``run`` this kernel holds (those with content), in action order."""
    found = [r for (name, _), r in tuple(kernel().part(_OpenReports).items()) if name == run and not r.remote and r.has_content()]
    return sorted(found, key=lambda r: int(r.action[1:]) if r.action and r.action[1:].isdigit() else 0)


def read_report(run: str, action: str) -> str | None:
    """The kept page of one action's report, or None (also for names that would leave the reports folder)."""
    folder = (home_dir() / "reports").resolve()
    path = (folder / run / f"{action}.html").resolve()
    if folder not in path.parents or not path.is_file():
        return None
    return path.read_text(encoding="utf-8")


def current_report() -> Report:
    """The running action's report (kernel or worker), or a throwaway one outside a task."""
    info = whoami()
    if info is None:
        return Report("dummy")
    return _report(info.run, info.action, info.task, info.remote)


def _received(action: Action, payload: bytes) -> None:
    """Kernel: a change a worker body made to its report."""
    tab, op, content = loads(payload)
    target = _report(action.run.name, action.name, action.spec.name).get_tab(tab)
    target.log(content) if op == "log" else target.replace(content)


register("report", receive=_received)


def get_tab(name: str, /, create_if_missing: bool = True) -> Tab:
    return current_report().get_tab(name, create_if_missing=create_if_missing)


class _Both:
    """A function callable as ``f(...)`` from sync code and ``await f.aio(...)`` from async code, as the SDK's."""

    def __init__(self, func: Any) -> None:
        self.func = func
        self.__doc__ = func.__doc__
        self.__name__ = func.__name__.lstrip("_")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    async def aio(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"flyte_nb.report.{self.__name__}"


def _log(content: str, do_flush: bool = False) -> None:
    """Add HTML to the ``main`` tab of the running action's report."""
    get_tab(MAIN).log(content)


def _replace(content: str, do_flush: bool = False) -> None:
    """Replace the ``main`` tab's HTML."""
    current_report().get_tab(MAIN).replace(content)


def _flush() -> None:
    """Write the report out (it already is after every change)."""
    current_report().save()


log = _Both(_log)
replace = _Both(_replace)
flush = _Both(_flush)


def reports_of(run: Any) -> dict[str, str]:
    """The kept report pages of a run (``Run``, stored run or run name), by action name."""
    name = run if isinstance(run, str) else run.name
    folder = home_dir() / "reports" / name
    if not folder.is_dir():
        return {}
    return {path.stem: path.read_text(encoding="utf-8") for path in sorted(folder.glob("*.html"))}


def show(run: Any) -> Any:
    """Display a run's reports in the notebook (an ``IPython.display.HTML`` per action); returns them."""
    from IPython.display import HTML, display

    shown = []
    for action, page in reports_of(run).items():
        frame = html.escape(page, quote=True)
        shown.append(HTML(f'<div><b>report of {html.escape(action)}</b>'
                          f'<iframe sandbox="allow-scripts" srcdoc="{frame}" '
                          'style="width:100%;height:320px;border:1px solid #ccc"></iframe></div>'))
    for item in shown:
        display(item)
    return shown
