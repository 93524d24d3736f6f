"""Where backends find their interface: :mod:`flyte_nb.engine.backend` (kept importable here)."""

from ..engine.backend import (Backend, _loaded, check_backend_name, default_backend, get_backend, known_backends,
                              set_default_backend)

__all__ = ["Backend", "_loaded", "check_backend_name", "default_backend", "get_backend", "known_backends",
           "set_default_backend"]
