"""Where backends find their interface: :mod:`flyte_nb.engine.backend` (kept importable here)."""

from ..engine.backend import (Backend, check_backend_name, default_backend, get_backend, known_backends,
                              loaded_backend, set_default_backend)

__all__ = ["Backend", "check_backend_name", "default_backend", "get_backend", "known_backends", "loaded_backend",
           "set_default_backend"]
