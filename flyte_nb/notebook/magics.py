"""IPython magics: ``%environment``, ``%%task``, ``%%run`` and ``%flyte`` (``%load_ext flyte_nb``).

Each magic declares its options with IPython's ``magic_arguments`` (so ``%environment?`` shows
them, and so does ``%environment --help``). Every mistake in the magic line or in the shape of a
cell is an IPython ``UsageError``: one line, no traceback. Errors raised by the user's own code
keep their type.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import hashlib
import keyword
import linecache
import math
import re
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import ArgDecorator, argument, magic_arguments, parse_argstring
from IPython.utils.process import arg_split

from ..api.config import init as flyte_init
from ..api.environment import TaskEnvironment
from ..api.policies import Backoff, Resources, RetryStrategy, seconds_from
from ..api.run import Run, default_environment, kernel_runs, with_runcontext
from ..api.task import TaskTemplate
from ..backends.base import default_backend, known_backends
from ..data.home import home_dir
from ..engine.action import Phase
from ..errors import ConfigurationError, FlyteNbError, without_engine_frames

_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CACHE_CHOICES = ("auto", "override", "disable", "enabled")
_COMMANDS = ("init", "runs", "status", "abort")
_RUN_PHASES = ("queued", "running", "succeeded", "failed", "aborted")
_MISSING = object()


# --------------------------------------------------------------------------- small helpers
def _one_line(text: object) -> str:
    return " ".join(str(text).split())


@contextlib.contextmanager
def _usage(prefix: str = "") -> Iterator[None]:
    """Turn a ConfigurationError (bad input to the API) into a one-line UsageError."""
    try:
        yield
    except ConfigurationError as error:
        raise UsageError(_one_line(f"{prefix}{error}")) from None


def _wants_help(line: str) -> bool:
    tokens = arg_split(line, strict=False)
    return "-h" in tokens or "--help" in tokens


def _identifier(name: str, what: str) -> str:
    if not name.isidentifier() or keyword.iskeyword(name):
        raise UsageError(f"{what} must be a Python identifier (it becomes a variable), got {name!r}")
    return name


def _flatten(groups: list[list[str]] | None) -> list[str]:
    return [item for group in groups or () for item in group]


def _env_pairs(groups: list[list[str]] | None) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in _flatten(groups):
        key, sep, value = item.partition("=")
        if not sep or not _ENV_KEY.match(key):
            raise UsageError(f"bad --env pair {item!r}: write KEY=VALUE, like LOG_LEVEL=debug")
        pairs[key] = value
    return pairs


def _throttles(groups: list[list[str]] | None) -> dict[str, int]:
    limits: dict[str, int] = {}
    for item in _flatten(groups):
        tag, sep, number = item.rpartition("=")
        if not sep or not tag or not number.isdigit() or int(number) < 1:
            raise UsageError(f"bad --throttle {item!r}: write TAG=N with N a whole number >= 1, like db=2")
        limits[tag] = int(number)
    return limits


def _tags(text: str) -> list[str]:
    tags = [tag.strip() for tag in text.split(",")]
    if not all(tags):
        raise UsageError(f"--tags must be comma-separated tag names, like db,io; got {text!r}")
    return tags


def _duration(text: str, option: str) -> float:
    try:
        return seconds_from(text, option)
    except ConfigurationError:
        raise UsageError(f"{option} must be a duration like 30s, 5m, 250ms or 2 (seconds), got {text!r}") from None


def _backoff(text: str) -> Backoff:
    """``BASE[,FACTOR[,CAP]]``: ``1s,2,30s`` waits 1 s, 2 s, 4 s … at most 30 s between attempts."""
    parts = [part.strip() for part in text.split(",")]
    if not 1 <= len(parts) <= 3 or not all(parts):
        raise UsageError(f"--backoff must be BASE[,FACTOR[,CAP]], like 1s,2,30s; got {text!r}")
    base = _duration(parts[0], "--backoff base")
    factor = 2.0
    if len(parts) > 1:
        try:
            factor = float(parts[1])
        except ValueError:
            factor = math.nan
        if not (math.isfinite(factor) and factor >= 1):
            raise UsageError(f"--backoff factor must be a number >= 1, like 2; got {parts[1]!r}")
    cap = _duration(parts[2], "--backoff cap") if len(parts) > 2 else max(60.0, base)
    if cap < base:
        raise UsageError(f"--backoff cap ({parts[2]}) must not be less than its base ({parts[0]})")
    return Backoff(base=base, factor=factor, cap=cap)


def _parse_cell(cell: str, magic: str) -> ast.Module:
    """The cell body as an AST (top-level ``await`` allowed); line numbers count the magic line."""
    try:
        tree = compile(cell, f"<%%{magic}>", "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    except SyntaxError as error:
        where = f" (line {error.lineno + 1} of the cell)" if error.lineno else ""
        raise UsageError(f"%%{magic}: the cell is not valid Python: {error.msg}{where}") from None
    ast.increment_lineno(tree, 1)
    return tree


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


class _Subcommands(ArgDecorator):
    """A ``magic_arguments`` decorator adding argparse sub-commands, each with its own options."""

    def __init__(self, commands: dict[str, tuple[str, list[tuple[tuple[str, ...], dict[str, Any]]]]]) -> None:
        self.commands = commands

    def add_to_parser(self, parser: argparse.ArgumentParser, group: Any) -> None:
        sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
        for name, (text, arguments) in self.commands.items():
            command = sub.add_parser(name, help=text, description=text, formatter_class=parser.formatter_class)
            for args, kwargs in arguments:
                command.add_argument(*args, **kwargs)


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser | None:
    for action in parser._actions:  # argparse keeps sub-commands here
        if isinstance(action, argparse._SubParsersAction):
            return action.choices.get(name)
    return None


# --------------------------------------------------------------------------- the magics
@magics_class
class FlyteMagics(Magics):
    """``%environment``, ``%%task``, ``%%run`` and ``%flyte`` / ``%flyte_nb``."""

    # ------------------------------------------------------------------ %environment
    @magic_arguments()
    @argument("name", metavar="NAME", help="the variable to bind it to, which is also the environment's name")
    @argument("--image", metavar="I", help="container image reference, like python:3.11-slim (default: auto)")
    @argument("--backend", metavar="B", help=f"where its tasks execute: {', '.join(known_backends())} "
              "(default: the one set by %%flyte init)")
    @argument("--concurrency", type=int, metavar="N", help="at most N of its actions run at once, across runs")
    @argument("--cpu", metavar="C", help="cores per action, like 1 or 0.5")
    @argument("--memory", metavar="M", help="memory per action, like 512Mi or 2Gi")
    @argument("--env", nargs="+", action="append", metavar="KEY=VALUE",
              help="environment variables of its tasks (several may follow one --env)")
    @argument("--cache", choices=_CACHE_CHOICES, help="cache policy of its tasks (default: disable)")
    @line_magic
    def environment(self, line: str) -> None:
        """Create a TaskEnvironment and bind it to NAME in the notebook.

        Equivalent to ``NAME = flyte_nb.TaskEnvironment("NAME", ...)``. Tasks join it with
        ``%%task NAME`` (or ``@NAME.task``). Example::

            %environment etl --concurrency 4 --cpu 1 --memory 512Mi --env LOG_LEVEL=debug
        """
        if _wants_help(line):
            print(self.environment.parser.format_help())
            return
        args = parse_argstring(self.environment, line)
        name = _identifier(args.name, "NAME")
        if args.concurrency is not None and args.concurrency < 1:
            raise UsageError(f"--concurrency must be a whole number >= 1, got {args.concurrency}")
        resources = None
        if args.cpu is not None or args.memory is not None:
            with _usage():
                resources = Resources(cpu=args.cpu, memory=args.memory)
        with _usage():
            env = TaskEnvironment(
                name,
                image=args.image or "auto",
                resources=resources,
                env_vars=_env_pairs(args.env),
                cache=args.cache or "disable",
                concurrency=args.concurrency,
                backend=args.backend,
            )
        self.shell.user_ns[name] = env

    # ------------------------------------------------------------------ %%task
    @magic_arguments()
    @argument("env", nargs="?", metavar="ENV", help="its environment: a variable bound by %%environment, or a "
              "TaskEnvironment's name (default: the environment 'default')")
    @argument("--retries", type=int, metavar="N", help="retry a failed attempt up to N more times")
    @argument("--backoff", metavar="BASE,FACTOR,CAP", help="wait BASE*FACTOR**(n-1) seconds, at most CAP, before "
              "retry n (like 1s,2,30s; needs --retries)")
    @argument("--timeout", metavar="T", help="stop an attempt after T, like 30s, 5m or 250ms")
    @argument("--cache", action="store_true", help="reuse results of earlier calls with the same inputs and source")
    @argument("--tags", metavar="A,B", help="comma-separated tags; run throttles (%%run --throttle) apply to them")
    @cell_magic
    def task(self, line: str, cell: str) -> None:
        """Make the function defined in this cell a task of ENV, bound under its own name.

        The cell defines exactly one top-level function (``def`` or ``async def``); imports,
        constants and other statements around it run in the notebook as usual. The function
        becomes ``ENV.task(func, ...)``: called inside a run, each call is an action; called
        outside a run, it is a plain function call. The cell's source is kept as the task's
        ``source`` (for the cache key and for display). Example::

            %%task etl --retries 3 --backoff 1s,2,30s --timeout 30s --tags db
            async def fetch(user_id: int) -> dict:
                ...
        """
        __tracebackhide__ = True  # IPython hides this frame in tracebacks of the cell's code
        if _wants_help(line):
            print(self.task.parser.format_help())
            return
        args = parse_argstring(self.task, line)
        env = self._environment(args.env)
        options: dict[str, Any] = {}
        if args.retries is not None:
            if args.retries < 0:
                raise UsageError(f"--retries must be a whole number >= 0, got {args.retries}")
            backoff = _backoff(args.backoff) if args.backoff is not None else None
            options["retries"] = RetryStrategy(args.retries, backoff=backoff) if backoff else args.retries
        elif args.backoff is not None:
            raise UsageError("--backoff needs --retries N (how many times to retry)")
        if args.timeout is not None:
            _duration(args.timeout, "--timeout")
            options["timeout"] = args.timeout
        if args.cache:
            options["cache"] = "auto"
        if args.tags is not None:
            options["tags"] = _tags(args.tags)

        tree = _parse_cell(cell, "task")
        functions = [node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
        if len(functions) != 1:
            found = f"{len(functions)}: {', '.join(f.name for f in functions)}" if functions else "none"
            raise UsageError(f"%%task: the cell must define exactly one function (def or async def); it defines {found}")
        name = functions[0].name

        ns = self.shell.user_ns
        previous = ns.get(name, _MISSING)
        self._execute(tree, f"%%task {line}".rstrip() + "\n" + cell)
        func = ns.get(name)
        if isinstance(func, TaskTemplate):
            self._restore(name, previous)
            raise UsageError(f"%%task: `{name}` is already a task; drop its @env.task decorator or the %%task line")
        try:
            with _usage("%%task: "):
                ns[name] = env.task(func, source=cell, **options)
        except UsageError:
            self._restore(name, previous)
            raise

    # ------------------------------------------------------------------ %%run
    @magic_arguments()
    @argument("--name", metavar="N", help="the run's name (N-2, N-3 ... if N was used before); default: a fresh "
              "name like brisk-otter-4f2a")
    @argument("--throttle", nargs="+", action="append", metavar="TAG=N",
              help="at most N actions tagged TAG run at once in this run (several may follow one --throttle)")
    @argument("--no-wait", action="store_true", help="return at once; the run goes on while you work")
    @argument("--out", metavar="VAR", help="bind the run's output (the cell's last expression) to VAR when the "
              "run finishes")
    @cell_magic
    def run(self, line: str, cell: str) -> Any:
        """Run this cell as the driver of a new run; its live view appears under the cell.

        The cell body becomes an ``async def`` driver whose globals are the notebook's, so it may
        use ``await``, ``asyncio.gather(...)``, ``flyte_nb.map(...)`` and ``flyte_nb.map.aio``.
        Its variables are local to the run; the value of its last expression (or a ``return``)
        is the run's output.

        Without --no-wait the cell waits for the run: the output becomes the cell's result
        (or, with --out VAR, is bound to VAR instead), and an error raised in the run is raised
        here with its own type. Interrupting the kernel aborts the run.

        With --no-wait the cell returns at once and the run goes on; with --out VAR, VAR is bound
        the moment the run succeeds (it stays unbound if the run fails or is aborted).
        ``%flyte status`` lists live runs and ``%flyte abort NAME`` stops one. Example::

            %%run --name nightly --throttle db=2 --out users
            ids = range(20)
            [user async for user in flyte_nb.map.aio(fetch, ids, concurrency=5)]
        """
        __tracebackhide__ = True
        if _wants_help(line):
            print(self.run.parser.format_help())
            return None
        from IPython.display import display

        args = parse_argstring(self.run, line)
        out = _identifier(args.out, "--out VAR") if args.out is not None else None
        throttle = _throttles(args.throttle)
        with _usage("%%run: "):
            context = with_runcontext(name=args.name, throttle=throttle)
        driver = self._driver(cell, line)
        with _usage("%%run: "):
            run = context.run(driver)
        ns = self.shell.user_ns
        if args.no_wait:
            if out is not None:
                run.add_done_callback(lambda done: _bind_output(ns, out, done))
            display(run)
            return None
        display(run)
        try:
            run.wait()
        except KeyboardInterrupt:
            run.abort("the cell was interrupted", wait=2.0)
            raise
        if run.error is not None:
            error = run.error
            raise error.with_traceback(without_engine_frames(error.__traceback__))  # its own type, without engine frames
        value = run.outputs()
        if out is not None:
            ns[out] = value
            return None
        return value

    # ------------------------------------------------------------------ %flyte
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
        import flyte_nb

        records = None
        store_runs = getattr(flyte_nb, "runs", None)  # the run store's history, when flyte_nb has one
        if callable(store_runs):
            try:
                with _usage("%flyte runs: "):
                    records = list(store_runs(limit=args.limit, status=args.status))
            except FlyteNbError as error:  # the store cannot be read: say so, and show this kernel's runs
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

    # ------------------------------------------------------------------ shared
    def _environment(self, name: str | None) -> TaskEnvironment:
        if name is None:
            return default_environment()
        ns = self.shell.user_ns
        value = ns.get(name)
        if isinstance(value, TaskEnvironment):
            return value
        named = [env for key, env in ns.items() if isinstance(env, TaskEnvironment) and not key.startswith("_")]
        for env in reversed(named):
            if env.name == name:
                return env
        if value is not None:
            raise UsageError(f"{name!r} is a {type(value).__name__}, not a TaskEnvironment; create one with "
                             f"%environment {name}")
        if name == "default":
            return default_environment()
        known = sorted({env.name for env in named})
        hint = f" (known: {', '.join(known)})" if known else ""
        raise UsageError(f"unknown environment {name!r}; create it with %environment {name}{hint}")

    def _execute(self, tree: ast.Module, text: str) -> None:
        """Execute ``tree`` in the notebook namespace, with its source cached for tracebacks."""
        __tracebackhide__ = True
        filename = self._cache_source(text, "task")
        code = compile(tree, filename, "exec", flags=self.shell.compile.flags, dont_inherit=True)
        exec(code, self.shell.user_ns)  # noqa: S102 - running the user's cell is the point

    def _cache_source(self, text: str, magic: str) -> str:
        """Put the whole cell (magic line included) in linecache for tracebacks; return its name.

        The name is a pseudo-file like ``<%%run In[3] 1f2e3d4c5b6a>``, labelled as the running
        cell. Not a ``.py`` path (as ipykernel names cells): IPython then shows the driver's frame,
        whose code has no ``def`` in the cell's text, from the raw lines rather than misplacing it.
        """
        result = getattr(self.shell.displayhook, "exec_result", None)  # the cell running now
        number = getattr(result, "execution_count", None) or self.shell.execution_count
        name = f"<%%{magic} In[{number}] {hashlib.sha1(text.encode()).hexdigest()[:12]}>"
        linecache.cache[name] = (len(text), None, [line + "\n" for line in text.splitlines()], name)
        labels = getattr(self.shell.compile, "_filename_map", None)  # "Cell In[3]" in tracebacks
        if isinstance(labels, dict):
            labels[name] = number
        return name

    def _restore(self, name: str, previous: Any) -> None:
        if previous is _MISSING:
            self.shell.user_ns.pop(name, None)
        else:
            self.shell.user_ns[name] = previous

    def _driver(self, cell: str, line: str) -> TaskTemplate:
        """The cell body as the ``async def`` driver task of a run (last expression returned)."""
        tree = _parse_cell(cell, "run")
        body = tree.body
        if any(_yields(node) for node in body):
            raise UsageError("%%run: the cell cannot yield; its last expression (or a return) is the run's output")
        if body and isinstance(body[-1], ast.Expr):
            body[-1] = ast.copy_location(ast.Return(value=body[-1].value), body[-1])
        module = ast.parse("async def run_cell():\n    pass\n")
        function = module.body[0]
        function.body = body or function.body
        ast.fix_missing_locations(module)
        text = f"%%run {line}".rstrip() + "\n" + cell
        filename = self._cache_source(text, "run")
        try:
            code = compile(module, filename, "exec", flags=self.shell.compile.flags, dont_inherit=True)
        except SyntaxError as error:
            where = f" (line {error.lineno} of the cell)" if error.lineno else ""
            raise UsageError(f"%%run: the cell cannot be a run's driver: {error.msg}{where}") from None
        scope: dict[str, Any] = {}
        exec(code, self.shell.user_ns, scope)  # noqa: S102 - defines the driver; its globals are the notebook's
        with _usage("%%run: "):
            return TaskTemplate(scope["run_cell"], default_environment(), source=cell)


def _yields(node: ast.AST) -> bool:
    """Whether ``node`` yields in the driver's own scope (not in a function or class it defines)."""
    if isinstance(node, (ast.Yield, ast.YieldFrom)):
        return True
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
        return False
    return any(_yields(child) for child in ast.iter_child_nodes(node))


def _bind_output(ns: dict[str, Any], var: str, run: Run) -> None:
    if run.phase == "succeeded":
        ns[var] = run.outputs()


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext flyte_nb``: register the magics."""
    ipython.register_magics(FlyteMagics)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext flyte_nb``: remove the magics again."""
    manager = ipython.magics_manager
    instance = manager.registry.pop(FlyteMagics.__name__, None)
    if instance is None:
        return
    for kind, magics in instance.magics.items():
        for name, method in magics.items():
            if manager.magics[kind].get(name) == method:
                del manager.magics[kind][name]
