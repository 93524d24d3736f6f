"""The wheel's build step for the JupyterLab extension (hatch-jupyter-builder's ``build-function``).

hatch-jupyter-builder's ``npm_builder`` with one addition: the build is skipped when the built
extension (``flyte_nb/labextension``) is newer than every source it is made from, for regular and
editable installs alike (``skip-if-exists`` would also skip after a source changed, and does not
apply to editable installs, which ``scripts/setup`` makes on every run).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hatch_jupyter_builder import npm_builder
from hatch_jupyter_builder.utils import is_stale

BUILT = Path("flyte_nb", "labextension")
SOURCES = ("src", "style", "schema", "package.json", "yarn.lock", "tsconfig.json", ".yarnrc.yml")


def build(target_name: str, version: str, path: str = "labextension", **kwargs: Any) -> None:
    log = logging.getLogger(__name__)
    if (BUILT / "package.json").exists() and not any(is_stale(BUILT, Path(path, s)) for s in SOURCES):
        log.info("flyte-nb labextension: %s is up to date with its sources, not rebuilding", BUILT)
        return
    npm_builder(target_name, version, path=path, force=True, **kwargs)
