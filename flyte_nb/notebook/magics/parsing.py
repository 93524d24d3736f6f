"""What the user typed: the magic line's options and the cell's body, and their one-line UsageErrors.

Every mistake in the magic line or in the shape of a cell is an IPython ``UsageError``: one line,
no traceback. The cell's text goes to linecache so tracebacks of the user's code show it.
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
from collections.abc import Iterator
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import ArgDecorator
from IPython.utils.process import arg_split

from ...api.policies import Backoff, seconds_from
from ...errors import ConfigurationError

_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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


def cache_source(shell: Any, text: str, magic: str) -> str:
    """Put the whole cell (magic line included) in linecache for tracebacks; return its name.

    The name is a pseudo-file like ``<%%run In[3] 1f2e3d4c5b6a>``, labelled as the running
    cell. Not a ``.py`` path (as ipykernel names cells): IPython then shows the driver's frame,
    whose code has no ``def`` in the cell's text, from the raw lines rather than misplacing it.
    """
    result = getattr(shell.displayhook, "exec_result", None)  # the cell running now
    number = getattr(result, "execution_count", None) or shell.execution_count
    name = f"<%%{magic} In[{number}] {hashlib.sha1(text.encode()).hexdigest()[:12]}>"
    linecache.cache[name] = (len(text), None, [line + "\n" for line in text.splitlines()], name)
    labels = getattr(shell.compile, "_filename_map", None)  # "Cell In[3]" in tracebacks
    if isinstance(labels, dict):
        labels[name] = number
    return name


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
