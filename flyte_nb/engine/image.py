"""Container image specs in Flyte 2's builder style.

An ``Image`` is an immutable description; each ``with_*`` returns a new one. The Docker backend
builds it on first use, tagged by :attr:`Image.digest` so an unchanged spec is never rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import ConfigurationError


def _python_version(python: object) -> str:
    if python is None:
        return f"{sys.version_info.major}.{sys.version_info.minor}"
    if isinstance(python, tuple) and len(python) >= 2:
        return f"{python[0]}.{python[1]}"
    if isinstance(python, str) and python.count(".") >= 1:
        return ".".join(python.split(".")[:2])
    raise ConfigurationError(f"python must look like (3, 11) or '3.11', got {python!r}")


def _names(kind: str, values: tuple) -> tuple[str, ...]:
    if len(values) == 1 and isinstance(values[0], (list, tuple)):
        values = tuple(values[0])
    for value in values:
        if not isinstance(value, str) or not value.strip():
            raise ConfigurationError(f"{kind} must be non-empty strings, got {value!r}")
    return tuple(values)


@dataclass(frozen=True)
class Image:
    """What an action's container is made of."""

    base: str | None = None
    python: str = f"{sys.version_info.major}.{sys.version_info.minor}"
    dockerfile: str | None = None
    pip_packages: tuple[str, ...] = ()
    apt_packages: tuple[str, ...] = ()
    env_vars: tuple[tuple[str, str], ...] = ()
    name: str | None = None

    @classmethod
    def from_debian_base(cls, python: object = None, *, python_version: object = None, name: str | None = None,
                         **_flyte_options: object) -> Image:
        """A Debian image with the given Python (default: the kernel's)."""
        return cls(base=None, python=_python_version(python_version if python_version is not None else python), name=name)

    @classmethod
    def from_base(cls, image_uri: str) -> Image:
        """An existing image, by reference."""
        if not isinstance(image_uri, str) or not image_uri.strip():
            raise ConfigurationError(f"Image.from_base needs an image reference such as 'python:3.11-slim', got {image_uri!r}")
        return cls(base=image_uri)

    @classmethod
    def from_dockerfile(cls, file: str | Path, name: str | None = None) -> Image:
        if not isinstance(file, (str, Path)):
            raise ConfigurationError(f"Image.from_dockerfile needs the Dockerfile's path, got {file!r}")
        path = Path(file)
        if not path.is_file():
            raise ConfigurationError(f"Image.from_dockerfile: no Dockerfile at {str(path)!r}")
        return cls(dockerfile=str(path.resolve()), name=name)

    @classmethod
    def from_uv_script(cls, script: str | Path, *, name: str | None = None, python_version: object = None,
                       **_flyte_options: object) -> Image:
        """A Debian image with the dependencies of a uv script's ``# /// script`` header (PEP 723)."""
        path = Path(script)
        if not path.is_file():
            raise ConfigurationError(f"Image.from_uv_script: no script at {str(path)!r}")
        block = re.search(r"^# /// script\s*$(.*?)^# ///\s*$", path.read_text(), re.M | re.S)
        if block is None:
            raise ConfigurationError(f"Image.from_uv_script: {path} has no '# /// script' header listing its dependencies")
        header = "\n".join(line[2:] if line.startswith("# ") else line[1:] for line in block.group(1).splitlines())
        try:
            dependencies = tomllib.loads(header).get("dependencies", [])
        except tomllib.TOMLDecodeError as error:
            raise ConfigurationError(f"Image.from_uv_script: the header of {path} is not TOML: {error}") from None
        image = cls.from_debian_base(python_version=python_version, name=name)
        wanted = [d for d in dependencies if re.split(r"[\s<>=!~\[;]", d, maxsplit=1)[0].lower() != "flyte"]
        return image.with_pip_packages(*wanted) if wanted else image  # flyte itself: flyte_nb's runtime stands in

    def with_pip_packages(self, *packages: str, **_flyte_options: object) -> Image:
        return replace(self, pip_packages=self.pip_packages + _names("pip packages", packages))

    def with_apt_packages(self, *packages: str) -> Image:
        return replace(self, apt_packages=self.apt_packages + _names("apt packages", packages))

    def with_env_vars(self, env_vars: dict[str, str]) -> Image:
        if not isinstance(env_vars, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env_vars.items()):
            raise ConfigurationError(f"with_env_vars needs a dict of str to str, got {env_vars!r}")
        return replace(self, env_vars=self.env_vars + tuple(env_vars.items()))

    @property
    def digest(self) -> str:
        """A content hash of the spec (and of the Dockerfile's text), stable across runs."""
        spec = {k: v for k, v in self.__dict__.items()}
        if self.dockerfile:
            spec["dockerfile_text"] = Path(self.dockerfile).read_text()
        return hashlib.sha256(json.dumps(spec, sort_keys=True, default=list).encode()).hexdigest()[:16]
