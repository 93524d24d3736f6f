"""Errors across process boundaries: the type survives even when its ``__init__`` does not replay.

``pickle`` rebuilds an exception as ``cls(*error.args)``; a class such as
``ArgError(code, detail)`` that passes a formatted message to ``super().__init__`` cannot be
rebuilt that way. Such errors travel as a recipe — the class (by value or by reference, shipped
separately), ``args``, and the picklable attributes — and are rebuilt without calling
``__init__``. Where even the class cannot be loaded (its module is missing on this side), the
error becomes a ``RecordedError`` subclass that keeps the type name, message and attributes and
still matches ``isinstance`` for the builtin base it had (``except ValueError`` still catches it).
"""

from __future__ import annotations

import builtins
from typing import Any

import cloudpickle

from ..errors import RecordedError

PROTOCOL = 5


def error_recipe(error: BaseException) -> tuple[Any, tuple]:
    """A ``__reduce__``-style pair that rebuilds ``error`` on the other side, type kept."""
    kind = type(error)
    try:
        class_bytes = cloudpickle.dumps(kind, protocol=PROTOCOL)
    except Exception:  # noqa: BLE001 - the class itself cannot travel: its name still does
        class_bytes = b""
    attributes = {}
    for name, value in vars(error).items():
        try:
            attributes[name] = cloudpickle.dumps(value, protocol=PROTOCOL)
        except Exception:  # noqa: BLE001 - that attribute stays behind
            continue
    try:
        args = cloudpickle.loads(cloudpickle.dumps(error.args, protocol=PROTOCOL))
    except Exception:  # noqa: BLE001
        args = tuple(str(a) for a in error.args)
    builtin_bases = tuple(c.__name__ for c in kind.__mro__ if getattr(builtins, c.__name__, None) is c)
    return rebuild_error, (class_bytes, f"{kind.__module__}.{kind.__qualname__}", builtin_bases, args, str(error),
                           attributes)


def rebuild_error(class_bytes: bytes, type_name: str, builtin_bases: tuple[str, ...], args: tuple, message: str,
                  attributes: dict[str, bytes]) -> BaseException:
    values = {}
    for name, data in attributes.items():
        try:
            values[name] = cloudpickle.loads(data)
        except Exception:  # noqa: BLE001
            continue
    kind = None
    if class_bytes:
        try:
            kind = cloudpickle.loads(class_bytes)
        except Exception:  # noqa: BLE001 - its module is not importable here
            kind = None
    if isinstance(kind, type) and issubclass(kind, BaseException):
        try:
            error = kind.__new__(kind, *args)
            error.args = args
            error.__dict__.update(values)
            return error
        except Exception:  # noqa: BLE001 - an exotic __new__: fall through to the stand-in
            pass
    recipe = (class_bytes, type_name, builtin_bases, args, message, attributes)
    return _stand_in(type_name, builtin_bases)(type_name, message, recipe, values)


def _stand_in(type_name: str, builtin_bases: tuple[str, ...]) -> type:
    """A ``RecordedError`` subclass named like the original, deriving from its nearest builtin base."""
    short = type_name.rsplit(".", 1)[-1]
    for base_name in builtin_bases:
        base = getattr(builtins, base_name)
        if base in (BaseException, Exception, object):
            break
        try:
            return type(short, (_StandIn, base), {"__module__": "flyte_nb.data.error_shipping"})
        except TypeError:  # layout conflict (OSError-like bases): try the next base
            continue
    return _StandIn


class _StandIn(RecordedError):
    """An error whose class could not be loaded here: its name, message and attributes kept."""

    def __init__(self, type_name: str, message: str, recipe: tuple = (), values: dict | None = None) -> None:
        super().__init__(type_name, message)
        self._recipe = recipe
        for name, value in (values or {}).items():
            try:
                setattr(self, name, value)
            except Exception:  # noqa: BLE001
                continue

    def __reduce__(self):
        if self._recipe:
            return rebuild_error, self._recipe
        return RecordedError, (self.type_name, self.message, self.traceback_text)
