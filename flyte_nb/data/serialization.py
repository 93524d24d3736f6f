"""Shipping tasks, inputs, outputs and errors between processes (cloudpickle, versioned).

Functions defined in notebook cells (``__main__``) travel by value. When something cannot be
pickled, the error names the culprit ("global `conn` of type `socket`") instead of showing a
pickling traceback from deep inside.
"""

from __future__ import annotations

import copyreg
import hashlib
import inspect
import io
import types
from typing import Any

import cloudpickle

from ..errors import RecordedError, SerializationError
from .error_shipping import error_recipe
from .pickling import PROTOCOL, by_value, loads

FORMAT = 1  # bump when the payload layout changes; a worker refuses other versions


def _picklable(value: Any) -> bool:
    try:
        by_value(value)
    except Exception:  # noqa: BLE001 - we only want to know whether it can be pickled
        return False
    return True


def _names_used(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names_used(const)
    return names


def culprit(func: Any) -> str | None:
    """The global or closure variable of ``func`` that cannot be pickled, described."""
    func = inspect.unwrap(func)
    code = getattr(func, "__code__", None)
    if code is None:
        return None
    for name, cell in zip(code.co_freevars, func.__closure__ or ()):
        try:
            value = cell.cell_contents
        except ValueError:
            continue
        if not _picklable(value):
            return f"closure variable `{name}` of type `{type(value).__name__}`"
    module_globals = getattr(func, "__globals__", {})
    for name in sorted(_names_used(code)):
        if name in module_globals and not _picklable(module_globals[name]):
            return f"global `{name}` of type `{type(module_globals[name]).__name__}`"
    return None


def ship_function(func: Any, task: str) -> tuple[str, bytes]:
    """``(key, bytes)`` of a task's function; the key lets workers keep it between actions."""
    try:
        data = by_value(func)
    except Exception as error:  # noqa: BLE001 - turned into a message that names the culprit
        what = culprit(func)
        detail = f"{what} cannot be pickled" if what else f"it cannot be pickled ({error})"
        raise SerializationError(f"cannot ship task `{task}`: {detail}; define it inside the task "
                                 "or pass it as an input that can be pickled") from None
    return hashlib.sha1(data).hexdigest(), data


def ship_inputs(args: tuple, kwargs: dict, task: str) -> bytes:
    try:
        return by_value((args, kwargs))
    except Exception as error:  # noqa: BLE001 - turned into a message that names the input
        for index, value in enumerate(args):
            if not _picklable(value):
                raise SerializationError(f"cannot ship the inputs of task `{task}`: argument {index} of type "
                                         f"`{type(value).__name__}` cannot be pickled") from None
        for name, value in kwargs.items():
            if not _picklable(value):
                raise SerializationError(f"cannot ship the inputs of task `{task}`: argument `{name}` of type "
                                         f"`{type(value).__name__}` cannot be pickled") from None
        raise SerializationError(f"cannot ship the inputs of task `{task}`: {error}") from None


def ship_output(value: Any, task: str) -> bytes:
    try:
        return by_value(value)
    except Exception as error:  # noqa: BLE001
        raise SerializationError(f"task `{task}` returned a `{type(value).__name__}` that cannot be pickled "
                                 f"back to the notebook ({error})") from None


def _portable_dumps(value: Any) -> bytes:
    """``dumps`` without reducers that other processes may lack: ``distributed`` installs tblib's for
    every exception class, which a container or worker without tblib cannot load."""
    if not any(_foreign(reducer) for reducer in copyreg.dispatch_table.values()):
        return by_value(value)
    buffer = io.BytesIO()
    _PortablePickler(buffer, protocol=PROTOCOL).dump(value)
    return buffer.getvalue()


class _PortablePickler(cloudpickle.CloudPickler):
    """Reads its dispatch table when created: the current one, without tblib's reducers."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        table = dict(cloudpickle.CloudPickler.dispatch_table)
        self.dispatch_table = {k: v for k, v in table.items() if not _foreign(v)}
        super().__init__(*args, **kwargs)


def _foreign(reducer: Any) -> bool:
    return getattr(reducer, "__module__", "").startswith("tblib")


def ship_error(error: BaseException) -> bytes:
    """The error itself when it pickles and replays; else a recipe that keeps its type (see
    ``error_shipping``); a ``RecordedError`` only when nothing else can travel."""
    try:
        data = _portable_dumps(error)
        loads(data)
        return data
    except Exception:  # noqa: BLE001 - its __init__ does not replay: ship the recipe
        pass
    try:
        rebuild, recipe = error_recipe(error)
        data = _portable_dumps(_Recipe(rebuild, recipe))
        loads(data)
        return data
    except Exception:  # noqa: BLE001 - fall back to type name and message
        kind = type(error)
        return by_value(RecordedError(f"{kind.__module__}.{kind.__qualname__}", str(error)))


class _Recipe:
    """Pickles as ``rebuild(*recipe)``: unpickling yields the error itself."""

    def __init__(self, rebuild: Any, recipe: tuple) -> None:
        self.rebuild = rebuild
        self.recipe = recipe

    def __reduce__(self):
        return self.rebuild, self.recipe
