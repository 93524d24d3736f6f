"""Every ``Image`` builder and option of the SDK is accepted; commands and uv projects are applied.

``with_commands`` becomes ``RUN`` steps of the local build (checked on the real Docker daemon),
``with_uv_project`` installs the project's dependencies; registries, platforms, build secrets and
code bundles do not apply to a local image and are accepted (see the README's compatibility table).
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

import flyte_nb as flyte
from flyte_nb.backends import docker as dockerbackend
from flyte_nb.backends.docker.images import _dockerfile_steps
from tests.compat.reference import reference_python
from tests.needs import need

BUILDERS = ("from_debian_base", "from_base", "from_ref_name", "from_dockerfile", "from_uv_script", "clone",
            "with_pip_packages", "with_apt_packages", "with_env_vars", "with_commands", "with_uv_project",
            "with_code_bundle", "with_requirements", "with_local_v2", "with_local_v2_plugins",
            "with_poetry_project", "with_source_file", "with_source_folder", "with_workdir", "with_dockerignore",
            "with_local_rs_controller")
_SIGNATURES = """
import inspect, json, sys, flyte
print(json.dumps({n: [p for p in inspect.signature(getattr(flyte.Image, n)).parameters if p not in ("self", "cls")]
                  for n in sys.argv[1:]}))
"""


def test_every_argument_of_the_sdks_builders_is_accepted():
    done = subprocess.run([str(reference_python()), "-c", _SIGNATURES, *BUILDERS], capture_output=True, text=True,
                          check=True, timeout=120)
    import inspect

    for name, sdk_params in json.loads(done.stdout).items():
        ours = inspect.signature(getattr(flyte.Image, name)).parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in ours.values())
        missing = [p for p in sdk_params if p not in ours and not takes_any]
        assert not missing, f"Image.{name} does not accept the SDK's {missing}"


def test_builders_return_new_hashable_images_and_leave_the_original_alone(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    base = flyte.Image.from_debian_base(python_version=(3, 11))
    built = (base.with_commands(["echo one", "echo two"]).with_apt_packages("curl", secret_mounts="token")
             .clone(name="mine", registry="ghcr.io/me", registry_secret="pull", extendable=True, platform="linux/arm64")
             .with_code_bundle(copy_style="all"))
    assert base == flyte.Image.from_debian_base(python_version=(3, 11)) and base.commands == ()
    assert built.commands == ("echo one", "echo two") and built.apt_packages == ("curl",) and built.name == "mine"
    assert len({hash(base), hash(built)}) == 2 and built.digest != base.digest
    assert base.clone(base_image="python:3.11-slim").base == "python:3.11-slim"
    assert flyte.Image.from_ref_name().base is None and flyte.Image.from_ref_name("gpu").name == "gpu"
    assert flyte.Image.from_dockerfile(tmp_path / "Dockerfile", registry="ghcr.io/me", name="df").name == "df"
    # images described before commands existed keep their digest: nothing built is rebuilt
    assert flyte.Image.from_base("python:3.11-slim").with_env_vars({"A": "b"}).with_pip_packages("httpx").digest \
        == "8bbbb23ff8a47602"


def test_a_uv_projects_and_a_requirements_files_packages_are_installed_when_built(tmp_path):
    project = tmp_path / "pyproject.toml"
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# pinned\nrich==13.0  # pretty\n-e .\n")
    base = flyte.Image.from_debian_base()
    image = base.with_uv_project(pyproject_file=project, uvlock=tmp_path / "uv.lock", extra_args="--frozen")
    image = image.with_requirements(requirements)
    with pytest.raises(flyte.ConfigurationError, match="no pyproject.toml at"):  # as the SDK: checked when built
        _dockerfile_steps(image, "base")
    project.write_text('[project]\nname = "app"\nversion = "0.1"\ndependencies = ["flyte>=2", "polars>=1.0", "httpx"]\n')
    assert "--disable-pip-version-check 'polars>=1.0' httpx rich==13.0\n" in _dockerfile_steps(image, "base")
    before = image.digest
    project.write_text('[project]\nname = "app"\nversion = "0.2"\ndependencies = ["httpx"]\n')
    assert image.digest != before, "a changed pyproject must be a new image"
    assert base.with_local_v2().with_local_v2_plugins("x").with_source_file(project).with_workdir("/app") == base
    assert base.with_poetry_project(project).pip_packages == () and base.with_poetry_project(project) != base


def test_commands_are_run_steps_of_the_real_build():
    try:
        client = dockerbackend._connect()
    except flyte.ConfigurationError as error:
        need(f"Docker is not usable here: {error}")
    client.close()
    token = f"built-{time.time_ns()}"
    image = flyte.Image.from_debian_base().with_commands([f"echo {token} > /opt/marker", "cat /opt/marker"])
    env = flyte.TaskEnvironment("compat-commands", backend="docker", image=image)

    @env.task
    def marker() -> str:
        with open("/opt/marker") as file:
            return file.read().strip()

    try:
        assert flyte.run(marker).outputs(timeout=180) == token
    finally:
        subprocess.run(["docker", "rmi", "-f", f"flyte-nb-image:{image.digest}"], capture_output=True)
