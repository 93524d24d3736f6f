"""Flyte's cache-version policies: ``CachePolicy``, ``FunctionBodyPolicy``, ``VersionParameters``.

Without policies (or with only ``FunctionBodyPolicy``) the engine's own fingerprint versions a
cached task: the function body, which for a notebook cell is the cell's source. Any other policy
(a git hash, a data version…) computes the version itself, once, when the task is defined.
"""

from __future__ import annotations

import hashlib
import inspect
import textwrap
from dataclasses import dataclass, replace
from typing import Any, Callable, Protocol, runtime_checkable

from ..errors import ConfigurationError
from .policies import Cache


@dataclass
class VersionParameters:
    """What a policy may look at: the task's function and image."""

    func: Callable[..., Any] | None
    image: Any = None
    code_bundle: Any = None


@runtime_checkable
class CachePolicy(Protocol):
    """Computes a cache version from a salt and the task's :class:`VersionParameters`."""

    def get_version(self, salt: str, params: VersionParameters) -> str: ...


class FunctionBodyPolicy:
    """The default policy: the version changes when the function's source changes."""

    def get_version(self, salt: str, params: VersionParameters) -> str:
        if params.func is None:
            return ""
        source = textwrap.dedent(inspect.getsource(params.func))
        return hashlib.sha256((source + salt).encode()).hexdigest()


def get_default_policies() -> list[CachePolicy]:
    return [FunctionBodyPolicy()]


def with_policies(cache: Cache | None, func: Callable[..., Any], image: Any = None) -> Cache | None:
    """``cache`` with ``version`` set from its policies when a policy other than the function body is asked for."""
    if cache is None or cache.policies is None or cache.version_override or cache.version:
        return cache
    policies = cache.policies if isinstance(cache.policies, (list, tuple)) else [cache.policies]
    for policy in policies:
        if not callable(getattr(policy, "get_version", None)):
            raise ConfigurationError(f"cache policies must have get_version(salt, params), got {policy!r}")
    if all(isinstance(policy, FunctionBodyPolicy) for policy in policies):
        return cache  # the engine's fingerprint does this, notebook cells included
    params = VersionParameters(func=func, image=image)
    try:
        joined = "".join(policy.get_version(cache.salt, params) for policy in policies)
    except Exception as error:  # noqa: BLE001 - a policy is user code: say which one failed
        raise ConfigurationError(f"a cache policy failed to compute a version: {error!r}") from error
    return replace(cache, version=hashlib.sha256(joined.encode()).hexdigest())
