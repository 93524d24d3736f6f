"""``%environment`` and ``%%task``: environments and the tasks defined in cells."""

from __future__ import annotations

import ast
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from ...api.environment import TaskEnvironment
from ...api.policies import Resources, RetryStrategy
from ...api.run import default_environment
from ...api.task import TaskTemplate
from ...backends.base import known_backends
from .parsing import (_backoff, _duration, _env_pairs, _identifier, _parse_cell, _tags, _usage, _wants_help,
                      cache_source)

_CACHE_CHOICES = ("auto", "override", "disable", "enabled")
_MISSING = object()


@magics_class
class TaskMagics(Magics):
    """``%environment`` and ``%%task`` (part of ``FlyteMagics``)."""

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
        filename = cache_source(self.shell, text, "task")
        code = compile(tree, filename, "exec", flags=self.shell.compile.flags, dont_inherit=True)
        exec(code, self.shell.user_ns)  # noqa: S102 - running the user's cell is the point

    def _restore(self, name: str, previous: Any) -> None:
        if previous is _MISSING:
            self.shell.user_ns.pop(name, None)
        else:
            self.shell.user_ns[name] = previous
