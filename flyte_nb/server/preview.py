"""Short text previews of recorded values, without running code from the store.

Recorded inputs and outputs are pickles. Loading an arbitrary pickle runs code, and the classes
of a notebook's values may not even be importable in the Jupyter server; so the server loads
only plain data (numbers, strings, containers, dates ...) and names the type of anything else.
"""

from __future__ import annotations

import io
import pickle
import reprlib
from typing import Any

PREVIEW_CHARS = 2_000
_SAFE: dict[str, frozenset[str]] = {
    "builtins": frozenset({"bool", "bytearray", "bytes", "complex", "dict", "float", "frozenset", "int", "list",
                           "range", "set", "slice", "str", "tuple", "NoneType"}),
    "collections": frozenset({"OrderedDict", "defaultdict", "deque", "Counter"}),
    "datetime": frozenset({"date", "datetime", "time", "timedelta", "timezone"}),
    "decimal": frozenset({"Decimal"}),
    "fractions": frozenset({"Fraction"}),
    "uuid": frozenset({"UUID"}),
}


class Unsafe(Exception):
    """The pickle needs a class outside the plain-data allow list."""


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if name in _SAFE.get(module, ()):
            return super().find_class(module, name)
        raise Unsafe(f"{module}.{name}")


_repr = reprlib.Repr()
_repr.maxstring = 400
_repr.maxother = 400
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 30
_repr.maxlevel = 4


def preview(data: bytes | None) -> dict[str, Any]:
    """``{"preview": text or None, "size": bytes or None}`` for a pickled value."""
    if data is None:
        return {"preview": None, "size": None}
    try:
        value = _PlainUnpickler(io.BytesIO(data)).load()
    except Unsafe as unsafe:
        text = f"<a value of type {unsafe.args[0]}: load it in a kernel with flyte_nb.get_run(...)>"
    except Exception as error:  # noqa: BLE001 - a damaged or foreign pickle: say so, never fail the request
        text = f"<not readable here: {type(error).__name__}: {error}>"
    else:
        text = _repr.repr(value)
    return {"preview": text[:PREVIEW_CHARS], "size": len(data)}
