"""Which tasks a task's body names: read from its code, so a driver's spare containers start with it.

A one-shot driver's children each need a fresh container, and a container start costs more than
a short child. Knowing before the driver runs that its body calls tasks (of which environments)
lets the backend start their containers alongside the driver's own instead of after the first
call. The answer is a static reading of the function (the names its code and nested code use,
looked up in its globals and closure): a call through an attribute (``tasks.leaf``) or a task
passed in as an argument is not seen, and such a driver's spares start at its first child call.
"""

from __future__ import annotations

import functools
import types
from typing import Any, Callable

from ...engine.spec import TaskSpec

_DEPTH = 4  # helper functions followed, nested or named in globals (a driver's own helpers)


def callees(func: Callable[..., Any]) -> tuple[TaskSpec, ...]:
    """The specs of the tasks ``func``'s code names, in first-seen order (no duplicates)."""
    found: dict[int, TaskSpec] = {}
    _visit(_unwrap(func), found, set(), _DEPTH)
    return tuple(found.values())


def _unwrap(func: Any) -> Any:
    for _ in range(8):
        inner = func.func if isinstance(func, functools.partial) else getattr(func, "func", None)
        if inner is None or not callable(inner):
            inner = getattr(func, "__wrapped__", None)
        if inner is None:
            return func
        func = inner
    return func


def _visit(func: Any, found: dict[int, TaskSpec], seen: set[int], depth: int) -> None:
    code = getattr(func, "__code__", None)
    if not isinstance(code, types.CodeType) or id(code) in seen or depth < 0:
        return
    seen.add(id(code))
    scope = dict(getattr(func, "__globals__", None) or {})
    for name, cell in zip(code.co_freevars, getattr(func, "__closure__", None) or ()):
        try:
            scope[name] = cell.cell_contents
        except ValueError:  # not bound yet
            pass
    for name in _names(code):
        value = scope.get(name)
        spec = getattr(value, "spec", None)
        if isinstance(spec, TaskSpec):
            found.setdefault(id(spec), spec)
        elif isinstance(value, types.FunctionType):
            _visit(value, found, seen, depth - 1)


def _names(code: types.CodeType) -> set[str]:
    """Global and free names used by ``code`` and the functions defined in it."""
    names = set(code.co_names) | set(code.co_freevars)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names
