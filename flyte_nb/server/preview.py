"""Short text previews of recorded values: bounded work, and no code from the store is run.

Recorded inputs and outputs are pickles. Loading an arbitrary pickle runs code, and the classes
of a notebook's values may not even be importable in the Jupyter server; so the server loads
only plain data (numbers, strings, containers, dates ...) and names the type of anything else.

Plain data can still cost without bound: a 46-byte pickle may ask for ``bytearray(500_000_000)``
or ``list(range(30_000_000))``, declare a 4 GB string it does not contain, or hold an int whose
decimal text is too long to print. So every step has a limit fixed before it starts: pickles
over ``LOAD_MAX`` bytes are sized, not loaded (the caller does not even read them); the opcodes
are scanned first (``OPS_MAX`` of them, every declared length checked against the data); each
allowed constructor is charged the elements it would build, ``BUILD_MAX`` in all per preview;
and the text is cut as it is made (``PREVIEW_CHARS``), however the value nests or shares parts.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import reprlib
from typing import Any

PREVIEW_CHARS = 2_000
LOAD_MAX = 1 << 20  # bytes of pickle loaded for a preview; larger values are only sized
OPS_MAX = 200_000  # pickle opcodes scanned (about 0.2 s); more is too complex to preview
BUILD_MAX = 200_000  # elements all constructor calls of one preview may build (a few MB)
SCALAR_BITS = 4_096  # the largest int a scalar constructor (Fraction, timedelta ...) is given
_SAFE: dict[str, frozenset[str]] = {
    "builtins": frozenset({"bool", "bytearray", "bytes", "complex", "dict", "float", "frozenset", "int", "list",
                           "range", "set", "slice", "str", "tuple", "NoneType"}),
    "collections": frozenset({"OrderedDict", "defaultdict", "deque", "Counter"}),
    "datetime": frozenset({"date", "datetime", "time", "timedelta", "timezone"}),
    "decimal": frozenset({"Decimal"}),
    "fractions": frozenset({"Fraction"}),
    "uuid": frozenset({"UUID"}),
}
# constructors whose result grows with their first argument: charged its length (or its value if an int)
_BUILDERS = frozenset({"bytearray", "bytes", "dict", "frozenset", "list", "set", "str", "tuple", "OrderedDict",
                       "defaultdict", "deque", "Counter"})
_AS_TYPE = frozenset({"UUID"})  # rebuilt with NEWOBJ, which needs the class itself (it takes no arguments)


class Unsafe(Exception):
    """The pickle needs a class outside the plain-data allow list."""


class TooCostly(Exception):
    """Previewing this value would take more than a preview may spend."""


class _Budget:
    def __init__(self) -> None:
        self.left = BUILD_MAX

    def charge(self, name: str, args: tuple) -> None:
        if name in _BUILDERS:
            first = args[0] if args else ()
            cost = first if type(first) is int else len(first) if hasattr(first, "__len__") else 0  # a factory
            self.left -= max(0, cost)
            if self.left < 0:
                raise TooCostly(f"it would build more than {BUILD_MAX:,} elements")
        elif any(type(arg) is int and arg.bit_length() > SCALAR_BITS for arg in args):
            raise TooCostly(f"it asks {name} to work on an int of more than {SCALAR_BITS} bits")


class _Charged:
    """An allowed constructor that is charged before it builds anything (see :class:`_Budget`)."""

    def __init__(self, cls: type, budget: _Budget) -> None:
        self.cls, self.budget = cls, budget

    def __call__(self, *args: Any) -> Any:
        self.budget.charge(self.cls.__name__, args)
        return self.cls(*args)

    def __repr__(self) -> str:  # a defaultdict shows its factory
        return repr(self.cls)


class _PlainUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.budget = _Budget()

    def find_class(self, module: str, name: str) -> Any:
        if name not in _SAFE.get(module, ()):
            raise Unsafe(f"{module}.{name}")
        cls = super().find_class(module, name)
        return cls if name in _AS_TYPE else _Charged(cls, self.budget)


def _scan(data: bytes) -> None:
    """Walk the opcodes without building anything: declared lengths must be there, counts bounded."""
    for count, _ in enumerate(pickletools.genops(data)):
        if count >= OPS_MAX:
            raise TooCostly(f"it has more than {OPS_MAX:,} pickle operations")


class _Repr(reprlib.Repr):
    """reprlib with a budget for the whole text: a value that shares parts cannot multiply the work."""

    def __init__(self) -> None:
        super().__init__()
        self.maxstring = self.maxother = 400
        self.maxlist = self.maxtuple = self.maxdict = self.maxset = self.maxfrozenset = self.maxdeque = 30
        self.maxlevel = 4
        self.left = 0

    def repr(self, x: Any) -> str:
        self.left = PREVIEW_CHARS
        return super().repr(x)

    def repr1(self, x: Any, level: int) -> str:
        if self.left <= 0:
            return "..."
        text = super().repr1(x, level)
        self.left -= len(text)
        return text

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 128:  # printing a long int costs time quadratic in its length
            return f"<int of about {int(x.bit_length() * 0.30103) + 1:,} digits>"
        return repr(x)

    def repr_bytes(self, x: bytes, level: int) -> str:
        return repr(x[:self.maxstring]) + ("..." if len(x) > self.maxstring else "")

    def repr_bytearray(self, x: bytearray, level: int) -> str:
        return f"bytearray({self.repr_bytes(bytes(x[:self.maxstring + 1]), level)})"

    def repr_instance(self, x: Any, level: int) -> str:
        try:
            return super().repr_instance(x, level)
        except Exception:  # noqa: BLE001 - a Decimal or Fraction too long to print, say
            return f"<{type(x).__name__}: too long to show here>"


def _size(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size:,} bytes"


def preview(data: bytes | None, size: int | None = None) -> dict[str, Any]:
    """``{"preview": text or None, "size": bytes or None}`` for a pickled value.

    ``data`` None with a ``size`` means the caller left a value of that size unread (over ``LOAD_MAX``).
    """
    if data is None and size is None:
        return {"preview": None, "size": None}
    size = len(data) if data is not None else size
    loaded = "load it in a kernel with flyte_nb.get_run(...)"
    if data is None or len(data) > LOAD_MAX:
        return {"preview": f"<a value of {_size(size)}: too large to preview here; {loaded}>", "size": size}
    try:
        _scan(data)
        value = _PlainUnpickler(data).load()
        text = _Repr().repr(value)
    except Unsafe as unsafe:
        text = f"<a value of type {unsafe.args[0]}: {loaded}>"
    except TooCostly as costly:
        text = f"<a value too costly to preview here ({costly}); {loaded}>"
    except Exception as error:  # noqa: BLE001 - a damaged or foreign pickle: say so, never fail the request
        text = f"<not readable here: {type(error).__name__}: {str(error)[:200]}>"
    return {"preview": text[:PREVIEW_CHARS], "size": size}
