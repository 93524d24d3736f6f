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
    commands: tuple[str, ...] = ()
    package_files: tuple[tuple[str, str], ...] = ()  # (kind, path): read when built, as the SDK reads them

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
    def from_ref_name(cls, name: str = "default") -> Image:
        """The SDK's named image from its config; locally every name is the local base image."""
        return cls(name=None if name == "default" else name)

    @classmethod
    def from_dockerfile(cls, file: str | Path, registry: str | None = None, name: str | None = None,
                        platform: object = None) -> Image:
        """``registry`` and ``platform`` are accepted: a local build is never pushed and runs on this machine."""
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

    def clone(self, registry: str | None = None, registry_secret: object = None, name: str | None = None,
              base_image: str | None = None, python_version: object = None, addl_layer: object = None,
              extendable: bool | None = None, platform: object = None) -> Image:
        """A copy with a new name, base or Python; registry, secret, platform and SDK layers do not apply locally."""
        return replace(self, name=name or self.name, base=base_image or self.base,
                       python=self.python if python_version is None else _python_version(python_version))

    def with_uv_project(self, pyproject_file: str | Path, uvlock: Path | None = None, index_url: str | None = None,
                        extra_index_urls: object = None, pre: bool = False, extra_args: str | None = None,
                        secret_mounts: object = None, project_install_mode: str = "dependencies_only") -> Image:
        """The ``[project].dependencies`` of a pyproject, installed at build time (as pip packages, not pinned by uv.lock)."""
        return replace(self, package_files=self.package_files + (("pyproject", str(Path(pyproject_file).resolve())),))

    def with_requirements(self, file: str | Path, index_url: str | None = None, extra_index_urls: object = None,
                          pre: bool = False, extra_args: str | None = None, secret_mounts: object = None) -> Image:
        """A requirements file's packages, installed at build time."""
        return replace(self, package_files=self.package_files + (("requirements", str(Path(file).resolve())),))

    def file_packages(self) -> tuple[str, ...]:
        """The packages named by ``with_uv_project`` / ``with_requirements`` files, read when the image is built."""
        packages: list[str] = []
        for kind, file in self.package_files:
            path = Path(file)
            if not path.is_file():
                raise ConfigurationError(f"Image: no {'pyproject.toml' if kind == 'pyproject' else 'requirements file'} "
                                         f"at {file!r}; paths are relative to the directory the program ran from")
            if kind == "requirements":
                packages += [line.split("#")[0].strip() for line in path.read_text().splitlines()
                             if line.split("#")[0].strip() and not line.startswith("-")]
                continue
            try:
                packages += tomllib.loads(path.read_text()).get("project", {}).get("dependencies", [])
            except tomllib.TOMLDecodeError as error:
                raise ConfigurationError(f"Image.with_uv_project: {path} is not TOML: {error}") from None
        return tuple(p for p in packages if re.split(r"[\s<>=!~\[;]", p, maxsplit=1)[0].lower() != "flyte")

    def with_poetry_project(self, pyproject_file: str | Path, poetry_lock: Path | None = None,
                            extra_args: str | None = None, secret_mounts: object = None,
                            project_install_mode: str = "dependencies_only") -> Image:
        """As ``with_uv_project``: the pyproject's ``[project].dependencies`` (``poetry.lock`` does not pin them)."""
        return self.with_uv_project(pyproject_file)

    def with_source_file(self, src: Path | list[Path], dst: str = ".") -> Image:
        """Accepted, not copied: a task's code reaches its container through flyte_nb (data: ``flyte.io``)."""
        return self

    def with_source_folder(self, src: Path, dst: str = ".", copy_contents_only: bool = False) -> Image:
        """Accepted, not copied (see ``with_source_file``)."""
        return self

    def with_workdir(self, workdir: str) -> Image:
        """Accepted: flyte_nb sets the container's working directory itself."""
        return self

    def with_dockerignore(self, path: Path) -> Image:
        """Accepted: nothing is copied from a local build context (see ``with_source_file``)."""
        return self

    def with_local_rs_controller(self) -> Image:
        return self

    def with_local_v2(self) -> Image:
        """Accepted: the SDK installs its own wheel; here flyte_nb's runtime is shipped to the container."""
        return self

    def with_local_v2_plugins(self, plugins: str | list[str] | None = None) -> Image:
        return self

    def with_commands(self, commands: list[str], secret_mounts: object = None) -> Image:
        """Each command is one ``RUN`` step of the build, in order (build secrets do not apply locally)."""
        return replace(self, commands=self.commands + _names("commands", (commands,) if isinstance(commands, str)
                                                               else tuple(commands)))

    def with_code_bundle(self, copy_style: str = "loaded_modules", dst: str = ".") -> Image:
        """Accepted: flyte_nb ships a task's code to its container itself, so there is nothing to copy."""
        return self

    def with_pip_packages(self, *packages: str, **_flyte_options: object) -> Image:
        return replace(self, pip_packages=self.pip_packages + _names("pip packages", packages))

    def with_apt_packages(self, *packages: str, secret_mounts: object = None) -> Image:
        return replace(self, apt_packages=self.apt_packages + _names("apt packages", packages))

    def with_env_vars(self, env_vars: dict[str, str]) -> Image:
        if not isinstance(env_vars, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env_vars.items()):
            raise ConfigurationError(f"with_env_vars needs a dict of str to str, got {env_vars!r}")
        return replace(self, env_vars=self.env_vars + tuple(env_vars.items()))

    @property
    def digest(self) -> str:
        """A content hash of the spec (and of the Dockerfile's text), stable across runs."""
        spec = {k: v for k, v in self.__dict__.items() if v or k not in ("commands", "package_files")}  # old digests stay
        spec["package_files_text"] = [Path(f).read_text() if Path(f).is_file() else None for _, f in self.package_files]
        if not self.package_files:
            del spec["package_files_text"]
        if self.dockerfile:
            spec["dockerfile_text"] = Path(self.dockerfile).read_text()
        return hashlib.sha256(json.dumps(spec, sort_keys=True, default=list).encode()).hexdigest()[:16]
