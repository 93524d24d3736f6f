"""The flyte_nb runtime in any image: bind-mounted read-only from this kernel, never installed.

The ``flyte_nb`` package and the two libraries the worker needs (cloudpickle, greenlet) are mounted
from this kernel's environment and put on ``PYTHONPATH``, so an image only needs the same Python.
"""

from __future__ import annotations

import os

_LIB = "/opt/flyte_nb/lib"
_IO = "/opt/flyte_nb/io"
_RUNTIME_PACKAGES = ("flyte_nb", "cloudpickle", "greenlet")  # what the worker imports beyond the stdlib

# Makes ``flyte_nb`` a lazy package in the container (its __init__ runs on first attribute access),
# then runs the worker (``--connect SOCKET [--once TOKEN]``).
_BOOT = (
    "import sys,importlib.util as u\n"
    f"d='{_LIB}/flyte_nb'\n"
    "s=u.spec_from_file_location('flyte_nb',d+'/__init__.py',submodule_search_locations=[d])\n"
    "m=u.module_from_spec(s);sys.modules['flyte_nb']=m\n"
    "def g(n):\n"
    " if n.startswith('__'):raise AttributeError(n)\n"
    " del m.__getattr__;s.loader.exec_module(m);return getattr(m,n)\n"
    "m.__getattr__=g\n"
    "sys.argv[0]='worker';from flyte_nb.worker.main import main;main()\n"
)


def _runtime_volumes() -> dict[str, dict[str, str]]:
    """Read-only mounts that make the flyte_nb runtime importable in any image with the same Python."""
    import importlib

    volumes = {}
    for name in _RUNTIME_PACKAGES:
        module = importlib.import_module(name)
        volumes[os.path.dirname(os.path.abspath(module.__file__))] = {"bind": f"{_LIB}/{name}", "mode": "ro"}
    return volumes
