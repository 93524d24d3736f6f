"""Sizes written the way Kubernetes and Flyte write them ("512Mi", "2Gi"), parsed once.

Below every layer: the API validates ``Resources`` with it, the docker backend reads its result limit.
"""

from __future__ import annotations

import re

from .errors import ConfigurationError

_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(Ki|Mi|Gi|Ti|K|M|G|T|k)?B?\s*$")
_MEMORY_FACTOR = {None: 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
                  "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


_MAX_MEMORY = 2**63 - 1  # bytes: what a container runtime can hold


def memory_bytes(value: object) -> int:
    """Bytes from ``"512Mi"``, ``"2Gi"``, ``"1G"`` or an int of bytes."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= _MAX_MEMORY:
        return value
    if isinstance(value, str) and (match := _MEMORY.match(value)):
        size = float(match.group(1)) * _MEMORY_FACTOR[match.group(2)]
        if 1 <= size <= _MAX_MEMORY:  # refuses inf ('1e999Gi', an OverflowError at run time) and under a byte
            return int(size)
    raise ConfigurationError(f"memory must look like '512Mi', '2Gi' or '1G' (or bytes as an int), got {value!r}")
