"""``flyte.Secret`` / ``SecretRequest``: secrets a task reads from ``os.environ``, resolved on this machine.

A task asking for ``Secret("openai-key")`` sees it as ``OPENAI_KEY`` (or ``as_env_var``) while its
body runs. The value is the kernel's environment variable ``openai-key``, ``OPENAI_KEY`` or
``as_env_var``, else the file
``FLYTE_NB_HOME/secrets/[GROUP/]KEY``; when neither exists the task fails at once with an error
naming the secret and both places to put it. A ``mount``-ed secret (a file under
``/etc/flyte/secrets``) is not written anywhere here: ask for it ``as_env_var`` instead.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Union

from .data.home import home_dir
from .errors import ConfigurationError

_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
FLYTE_MOUNT = "/etc/flyte/secrets"


@dataclass(frozen=True)
class Secret:
    """A secret by ``key`` (and ``group``), given to the body as env var ``as_env_var``."""

    key: str
    group: str | None = None
    mount: pathlib.Path | None = None
    as_env_var: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key.strip():
            raise ConfigurationError(f"a Secret needs a key like 'openai-key', got {self.key!r}")
        if self.mount is not None and str(self.mount) != FLYTE_MOUNT:
            raise ConfigurationError(f"the only secret mount path is {FLYTE_MOUNT}, got {str(self.mount)!r}")
        if self.as_env_var is None and self.mount is None:  # a mounted secret is a file, not an env var
            default = f"{self.group}_{self.key}" if self.group else self.key
            object.__setattr__(self, "as_env_var", default.replace("-", "_").upper())
        if self.as_env_var is not None and not _ENV_NAME.match(self.as_env_var):
            raise ConfigurationError(f"invalid env var name for secret {self.key!r}: {self.as_env_var!r} "
                                     f"(it must match {_ENV_NAME.pattern})")

    def stable_hash(self) -> str:
        text = "|".join((self.key, self.group or "", str(self.mount or ""), self.as_env_var or ""))
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def file(self) -> pathlib.Path:
        """Where a local secret of this key is kept."""
        folder = home_dir() / "secrets"
        return (folder / self.group / self.key) if self.group else folder / self.key

    def resolve(self) -> str:
        """The secret's value on this machine, or a ConfigurationError saying where to put it."""
        default = (f"{self.group}_{self.key}" if self.group else self.key).replace("-", "_").upper()
        for name in dict.fromkeys((self.key, default, self.as_env_var or "")):
            if name and name in os.environ:
                return os.environ[name]
        if self.file.is_file():
            return self.file.read_text().rstrip("\n")
        raise ConfigurationError(f"secret {self.key!r}{f' (group {self.group!r})' if self.group else ''} is missing: "
                                 f"set env var {self.as_env_var} in the kernel or write the value to {self.file}")


SecretRequest = Union[str, Secret, "list[str | Secret]"]


def secrets_from_request(secrets: object) -> tuple[Secret, ...]:
    """``"key"``, ``Secret(...)`` or a list of them, as Secrets; anything else is refused."""
    if secrets is None:
        return ()
    items = [secrets] if isinstance(secrets, (str, Secret)) else secrets
    if not isinstance(items, (list, tuple)):
        raise ConfigurationError(f"secrets must be a key, a flyte.Secret or a list of them, got {secrets!r}")
    resolved = []
    for item in items:
        if isinstance(item, str):
            item = Secret(key=item)
        if not isinstance(item, Secret):
            raise ConfigurationError(f"secrets must be keys or flyte.Secret(...), got {item!r}")
        resolved.append(item)
    return tuple(resolved)


def secret_variables(secrets: tuple[Secret, ...]) -> Mapping[str, str]:
    """The env vars a body gets for ``secrets``, resolved now (where the body runs)."""
    return {secret.as_env_var: secret.resolve() for secret in secrets if secret.as_env_var}  # type: ignore[misc]
