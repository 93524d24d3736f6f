"""A task's ``env_vars`` and secrets in ``os.environ`` while its body runs, on every backend.

The task's function travels wrapped (``EnvironFunction``), so wherever it runs (the kernel, a
worker process, a container, a Dask worker) the variables are set around the call and put back
after it. Bodies that share a process overlap: a variable stays set while any body that asked
for it runs, and two running bodies that want different values for the same variable are an
error that says what to do (they cannot both see their value in one process).
"""

from __future__ import annotations

import functools
import inspect
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Callable

from .engine.kernel import kernel
from .errors import ConfigurationError

_ABSENT = object()


class _HeldVariables:
    """The variables running bodies of this process set: name -> [value, bodies using it, value before]."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.held: dict[str, list[Any]] = {}


@contextmanager
def environment_variables(variables: Mapping[str, str], who: str = "this task") -> Iterator[None]:
    """``variables`` set in ``os.environ`` for the block (reference-counted across overlapping blocks)."""
    state = kernel().part(_HeldVariables)  # the one the block began with, even if the kernel resets meanwhile
    with state.lock:
        for name, value in variables.items():
            held = state.held.get(name)
            if held is not None and held[0] != value:
                raise ConfigurationError(
                    f"{who} needs env var {name}={value!r} while a running task in this process has "
                    f"{name}={held[0]!r}; tasks of one process share os.environ, so run one of the "
                    "environments on backend='process' (or use the same value)")
        for name, value in variables.items():
            held = state.held.get(name)
            if held is None:
                state.held[name] = [value, 1, os.environ.get(name, _ABSENT)]
                os.environ[name] = value
            else:
                held[1] += 1
    try:
        yield
    finally:
        with state.lock:
            for name in variables:
                held = state.held[name]
                held[1] -= 1
                if held[1] == 0:
                    del state.held[name]
                    if held[2] is _ABSENT:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = held[2]


class EnvironFunction:
    """A task function that runs with its environment's variables set; looks like the function."""

    def __init__(self, func: Callable[..., Any], variables: Mapping[str, str], who: str, secrets: tuple = ()) -> None:
        functools.update_wrapper(self, func)
        self.func = func
        self.variables = dict(variables)
        self.who = who
        self.secrets = tuple(secrets)
        inner = func.func if isinstance(func, functools.partial) else func
        self.is_async = inspect.iscoroutinefunction(inner)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.is_async:
            return self._await(args, kwargs)
        with environment_variables(self._resolved(), self.who):
            return self.func(*args, **kwargs)

    async def _await(self, args: tuple, kwargs: dict) -> Any:
        with environment_variables(self._resolved(), self.who):
            return await self.func(*args, **kwargs)

    def _resolved(self) -> dict[str, str]:
        """The variables, with secrets read where the body runs (a missing one fails the call, naming it)."""
        if not self.secrets:
            return self.variables
        from .secrets import secret_variables

        return {**self.variables, **secret_variables(self.secrets)}

    def __reduce__(self) -> tuple[Any, ...]:
        return (EnvironFunction, (self.func, self.variables, self.who, self.secrets))

    def __repr__(self) -> str:
        return f"<{getattr(self.func, '__qualname__', self.func)!s} with env vars {sorted(self.variables)}>"


def with_environment_variables(func: Callable[..., Any], variables: Mapping[str, str], who: str,
                               secrets: tuple = ()) -> Callable[..., Any]:
    """``func`` itself when there is nothing to set, else it wrapped."""
    return EnvironFunction(func, variables, who, secrets) if variables or secrets else func
