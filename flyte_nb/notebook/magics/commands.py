"""``%flyte`` (also ``%flyte_nb``): init, runs, status, abort; and the runs table it prints."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import magic_arguments, parse_argstring
from IPython.utils.process import arg_split

from ...api.config import init as flyte_init
from ...api.history import runs as store_runs
from ...api.run import Run, kernel_runs
from ...backends.base import default_backend, known_backends
from ...data.home import home_dir
from ...engine.action import Phase
from ...errors import FlyteNbError
from .parsing import _one_line, _Subcommands, _subparser, _usage

_COMMANDS = ("init", "runs", "status", "abort")
_RUN_PHASES = ("queued", "running", "succeeded", "failed", "aborted")


def _field(record: Any, *names: str) -> Any:
    """The first of ``names`` that ``record`` has, as an attribute or a key (run store rows or ``Run``)."""
    for name in names:
        if isinstance(record, Mapping):
            value = record.get(name)
        else:
            try:
                value = getattr(record, name, None)
            except Exception:  # noqa: BLE001 - a record that cannot answer has no such field
                value = None
        if value is not None:
            return value
    return None


def _when(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (int, float)):
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value))
    if hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _seconds(value: Any) -> str:
    if value is None:
        return "-"
    if hasattr(value, "total_seconds"):
        value = value.total_seconds()
    try:
        return f"{float(value):.1f}s"
    except (TypeError, ValueError):
        return str(value)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(headers)]
    lines = [headers] + rows
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines)


def _started(record: Any) -> Any:
    started = _field(record, "started_at", "created_at")
    if started is None and isinstance(record, Run) and record.actions:
        driver = record.actions[0]
        started = driver.started_at or driver.queued_at
    return started


def _action_counts(record: Any) -> tuple[str, str]:
    """(actions, failed) of a run or a run store row."""
    counts = _field(record, "counts")
    if isinstance(counts, Mapping):
        failed = sum(counts.get(p, 0) for p in ("failed", "timed_out"))
        return str(sum(counts.values())), str(failed)
    actions = _field(record, "n_actions", "action_count", "actions")
    total = len(actions) if isinstance(actions, (list, tuple)) else actions
    failed = _field(record, "n_failed", "failed")
    return ("-" if total is None else str(total)), ("-" if failed is None else str(failed))


_RUNS_COLUMNS = ["NAME", "STATUS", "STARTED", "DURATION", "ACTIONS", "FAILED"]


def _run_row(record: Any) -> list[str]:
    """One row of ``%flyte runs`` for a live ``Run`` or a run store record."""
    actions, failed = _action_counts(record)
    return [str(_field(record, "name")), str(_field(record, "phase", "status")), _when(_started(record)),
            _seconds(_field(record, "duration")), actions, failed]


@magics_class
class CommandMagics(Magics):
    """``%flyte`` / ``%flyte_nb`` (part of ``FlyteMagics``)."""

    @magic_arguments()
    @_Subcommands({
        "init": ("Set the default backend of environments that name none, and the folder of run files.", [
            (("--backend",), {"metavar": "B", "help": f"the default backend: {', '.join(known_backends())}"}),
            (("--home",), {"metavar": "DIR", "help": "where flyte_nb keeps its files (default: $FLYTE_NB_HOME or "
                                                     "~/.flyte_nb)"}),
        ]),
        "runs": ("Recent runs, newest first (from the run store when there is one, else this kernel's).", [
            (("--limit",), {"type": int, "default": 20, "metavar": "N", "help": "show at most N runs (default 20)"}),
            (("--status",), {"choices": _RUN_PHASES, "metavar": "S",
                             "help": f"only runs with status S: {', '.join(_RUN_PHASES)}"}),
        ]),
        "status": ("Live runs of this kernel with their action counts per phase.", []),
        "abort": ("Abort a live run of this kernel: cancel its actions and free their slots.", [
            (("name",), {"metavar": "NAME", "help": "the run's name, as %%flyte status shows it"}),
        ]),
    })
    @line_magic("flyte")
    @line_magic("flyte_nb")
    def flyte(self, line: str) -> None:
        """flyte_nb's own commands (also available as %flyte_nb).

            %flyte init [--backend B] [--home DIR]   default backend and files folder
            %flyte runs [--limit N] [--status S]     recent runs as a table
            %flyte status                            live runs of this kernel, with counts
            %flyte abort NAME                        abort a live run

        ``%flyte COMMAND --help`` describes one command.
        """
        tokens = arg_split(line, strict=False)
        parser = self.flyte.parser
        if tokens and tokens[0] not in _COMMANDS and not tokens[0].startswith("-"):
            raise UsageError(f"unknown %flyte command {tokens[0]!r}; use one of: {', '.join(_COMMANDS)}")
        if "-h" in tokens or "--help" in tokens:
            command = _subparser(parser, tokens[0]) if tokens and tokens[0] in _COMMANDS else None
            print((command or parser).format_help())
            return
        if not tokens:
            raise UsageError(f"%flyte needs a command: {', '.join(_COMMANDS)} (see %flyte --help)")
        args = parse_argstring(self.flyte, line)
        getattr(self, f"_flyte_{args.command}")(args)

    def _flyte_init(self, args: argparse.Namespace) -> None:
        with _usage("%flyte init: "):
            flyte_init(backend=args.backend, home=args.home)
        print(f"flyte_nb: default backend {default_backend()!r}; files under {home_dir()}")

    def _flyte_runs(self, args: argparse.Namespace) -> None:
        if args.limit < 1:
            raise UsageError(f"--limit must be a whole number >= 1, got {args.limit}")
        records = None
        try:  # the run store's history; this kernel's runs when it cannot be read
            with _usage("%flyte runs: "):
                records = list(store_runs(limit=args.limit, status=args.status))
        except FlyteNbError as error:
            print(f"flyte_nb: cannot read the run store ({_one_line(error)}); showing this kernel's runs",
                  file=sys.stderr)
        if records is None:
            records = [r for r in reversed(kernel_runs()) if args.status is None or r.phase == args.status]
            records = records[: args.limit]
        if not records:
            print(f"no runs with status {args.status!r}" if args.status else "no runs yet")
            return
        print(_table(_RUNS_COLUMNS, [_run_row(record) for record in records]))

    def _flyte_status(self, args: argparse.Namespace) -> None:
        live = [run for run in kernel_runs() if not run.done()]
        if not live:
            print("no live runs")
            return
        phases = [str(phase) for phase in Phase]
        rows = []
        for run in live:
            counts = run.counts
            rows.append([run.name, run.phase, _seconds(run.duration)] + [str(counts.get(p, 0)) for p in phases])
        print(_table(["NAME", "PHASE", "ELAPSED"] + [p.upper() for p in phases], rows))

    def _flyte_abort(self, args: argparse.Namespace) -> None:
        runs = {run.name: run for run in kernel_runs()}
        run = runs.get(args.name)
        if run is None:
            live = [name for name, r in runs.items() if not r.done()]
            hint = f"; live runs: {', '.join(live)}" if live else "; no run is live"
            raise UsageError(f"no run named {args.name!r} in this kernel{hint}")
        if run.done():
            print(f"run {run.name} already ended ({run.phase}); nothing to abort")
            return
        run.abort("aborted with %flyte abort")
        print(f"aborted run {run.name}: {run.phase}")
