"""``flyte_nb.init`` / ``init_from_config``: choose the default backend and where files live.

Flyte 2 code calls these with its own options (org, project, endpoint …); they are accepted so
the same code runs, and the ones that mean something here are applied.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..backends.base import check_backend_name, set_default_backend
from ..context import set_placement
from ..data.home import set_home_dir
from ..errors import ConfigurationError

_FLYTE_INIT_OPTIONS = {
    "org", "project", "domain", "endpoint", "api_key", "insecure", "insecure_skip_verify", "ca_cert_file_path",
    "auth_type", "command", "proxy_command", "client_id", "client_credentials_secret", "rpc_retries",
    "http_proxy_url", "storage", "batch_size", "image_builder", "images", "source_config_path", "sync_local_sys_paths",
    "load_plugin_type_transformers", "log_level",
}


def init(backend: str | None = None, *, root_dir: str | os.PathLike[str] | None = None,
         home: str | os.PathLike[str] | None = None, cluster: Any = None, **flyte_options: Any) -> None:
    """Set the default backend of environments that name none, and the flyte_nb home folder.

    For ``backend="dask"``, ``endpoint`` is the scheduler address (``"tcp://host:8786"``) and
    ``cluster`` an existing ``distributed.Client`` or cluster object (LocalCluster, KubeCluster …).
    """
    unknown = set(flyte_options) - _FLYTE_INIT_OPTIONS
    if unknown:
        raise ConfigurationError(f"init got unknown option(s): {', '.join(sorted(unknown))}")
    if cluster is not None and backend != "dask":
        raise ConfigurationError("cluster=... is for the dask backend: flyte_nb.init(backend='dask', cluster=...)")
    if backend == "dask":
        check_backend_name(backend)
        from ..backends.dask import configure  # imports distributed only when dask is asked for

        configure(endpoint=flyte_options.get("endpoint"), cluster=cluster)
    # check everything before changing anything
    if backend is not None:
        check_backend_name(backend)
    for what, path in (("root_dir", root_dir), ("home", home)):
        if path is not None and not isinstance(path, (str, os.PathLike)):
            raise ConfigurationError(f"{what} must be a folder path, got {path!r}")
    if root_dir is not None and not Path(root_dir).is_dir():
        raise ConfigurationError(f"root_dir {str(root_dir)!r} is not a folder")
    if backend is not None:
        set_default_backend(backend)
    set_placement(flyte_options.get("project"), flyte_options.get("domain"), flyte_options.get("org"))
    if home is not None:
        set_home_dir(home)


_SEARCH = (".flyte/config.yaml", "config.yaml", "~/.flyte/config.yaml")


_FLYTE_CONFIG_OPTIONS = {"log_level", "storage", "images", "sync_local_sys_paths", "project", "domain"}


def init_from_config(path_or_config: str | os.PathLike[str] | dict[str, Any] | None = None,
                     root_dir: str | os.PathLike[str] | None = None, **flyte_options: Any) -> None:
    """Read a Flyte config file (YAML or JSON); its ``flyte_nb:`` section sets ``backend``/``home``.

    Without a path, the usual places are searched; finding none means the defaults.
    """
    unknown = set(flyte_options) - _FLYTE_CONFIG_OPTIONS
    if unknown:
        raise ConfigurationError(f"init_from_config got unknown option(s): {', '.join(sorted(unknown))}")
    if isinstance(path_or_config, dict):
        config = path_or_config
    elif path_or_config is not None and not isinstance(path_or_config, (str, os.PathLike)):
        raise ConfigurationError(f"init_from_config needs a config file path or a dict, got {path_or_config!r}")
    else:
        path = Path(path_or_config).expanduser() if path_or_config is not None else _find()
        if path is None:
            return init(root_dir=root_dir)
        if not path.is_file():
            raise ConfigurationError(f"no config file at {str(path)!r}")
        config = _load(path)
    section = config.get("flyte_nb") or {}
    if not isinstance(section, dict):
        raise ConfigurationError("the `flyte_nb` section of the config must be a mapping")
    unknown = set(section) - {"backend", "home"}
    if unknown:
        raise ConfigurationError(f"unknown key(s) in the `flyte_nb` config section: {', '.join(sorted(unknown))}")
    init(section.get("backend"), home=section.get("home"), root_dir=root_dir)


def _find() -> Path | None:
    for candidate in _SEARCH:
        path = Path(candidate).expanduser()
        if path.is_file():
            return path
    return None


def _load(path: Path) -> dict[str, Any]:
    text = path.read_text()
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigurationError(f"{path} is not valid JSON: {error}") from None
    else:
        try:
            import yaml
        except ImportError as error:
            raise ConfigurationError(f"reading {path.name} needs PyYAML: pip install pyyaml (or use a .json config)") from error
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as error:
            raise ConfigurationError(f"{path} is not valid YAML: {_yaml_problem(error)}") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path} must hold a mapping at its top level")
    return data


def _yaml_problem(error: Exception) -> str:
    """PyYAML's message spans lines with a source excerpt; one line with the position is clearer."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}"
