"""``flyte_nb.Image``: defined with the placement it describes (engine.image), re-exported here."""

from __future__ import annotations

from ..engine.image import Image

__all__ = ["Image"]
