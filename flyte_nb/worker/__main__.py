"""``python -m flyte_nb.worker``: see :mod:`flyte_nb.worker.main`."""

from .main import main

main()
