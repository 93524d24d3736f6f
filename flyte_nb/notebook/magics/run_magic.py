"""``%%run``: a cell as the driver of a new run, its live view under the cell."""

from __future__ import annotations

import ast
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from ...api.run import Run, default_environment, with_runcontext
from ...api.task import TaskTemplate
from ...errors import without_engine_frames
from ..display import ShownRun
from .parsing import _identifier, _parse_cell, _throttles, _usage, _wants_help, cache_source


@magics_class
class RunMagics(Magics):
    """``%%run`` (part of ``FlyteMagics``)."""

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
        shown = ShownRun(run)
        try:
            run.wait()
        except KeyboardInterrupt:
            run.abort("the cell was interrupted", wait=2.0)
            raise
        finally:
            shown.finish()
        if run.error is not None:
            error = run.error
            raise error.with_traceback(without_engine_frames(error.__traceback__))  # its own type, without engine frames
        value = run.outputs()
        if out is not None:
            ns[out] = value
            return None
        return value


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
        filename = cache_source(self.shell, text, "run")
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
