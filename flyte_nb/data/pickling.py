"""Pickling, in one place: two ways to turn a value into bytes, named by what they are for.

- :func:`by_value` ships to another process *now* (a worker, a container, a Dask task): always
  cloudpickle, so functions and classes of notebook cells travel by value.
- :func:`for_store` records a value in the run store, to be read back after a kernel restart:
  plain ``pickle`` first (fast, C), cloudpickle only when that fails or the pickle refers to
  ``__main__`` (whose objects must travel by value to be readable later).

Both load with :func:`loads` (cloudpickle writes ordinary pickles).
"""

from __future__ import annotations

import pickle
from typing import Any

import cloudpickle

PROTOCOL = 5
loads = pickle.loads
_pickle = pickle.dumps


def by_value(value: Any) -> bytes:
    """``value`` pickled for another process, with notebook code by value (cloudpickle)."""
    return cloudpickle.dumps(value, protocol=PROTOCOL)


def for_store(value: Any) -> bytes:
    """``value`` pickled for the run store: plain pickle unless it needs cloudpickle (see the module)."""
    try:
        data = _pickle(value, 5)  # positional: a keyword costs the C call ~30 ns
    except Exception:  # noqa: BLE001 - lambdas, local classes ...: cloudpickle can, or says why not
        return cloudpickle.dumps(value, protocol=5)
    if data.find(b"__main__") != -1:  # not `in`: for bytes it raises and clears a TypeError first (~70 ns)
        return cloudpickle.dumps(value, protocol=5)
    return data
