"""Images: the reference an environment runs in, built once per ``Image`` digest, checked for its Python.

flyte_nb never pulls: a plain reference must already be on the daemon. An ``Image`` with a
Dockerfile and/or extra packages and variables is built under a tag that is its digest, so the
same spec is never built twice (not even by another kernel).
"""

from __future__ import annotations

import io
import json
import os
import shlex
import sys
import tarfile
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...errors import ConfigurationError, FlyteNbError
from .daemon import BASE_IMAGE, LABEL, _labels

BUILT_REPOSITORY = "flyte-nb-image"


class ImageBuildError(FlyteNbError):
    """An ``Image`` could not be built; the message names the failing step and ends with the log's tail."""


_CA_NAME = "flyte-nb-ca.pem"


def host_ca_bundle() -> Path | None:
    """The CA bundle this kernel's pip and requests trust, if one is configured.

    Builds pass it to ``pip`` so that installs work behind the same TLS-inspecting proxy the
    kernel's own machine sits behind (the base image knows nothing of that proxy's CA).
    """
    for var in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        value = os.environ.get(var)
        if value and Path(value).is_file():
            return Path(value)
    return None


def _context(dockerfile: str, ca: Path | None) -> io.BytesIO:
    """A build context (a tar) with the Dockerfile and, when given, the CA bundle."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in (("Dockerfile", dockerfile.encode()), (_CA_NAME, ca.read_bytes() if ca else None)):
            if data is None:
                continue
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def _dockerfile_steps(image: Any, base: str, ca: Path | None = None) -> str:
    lines = [f"FROM {base}"]
    if image.apt_packages:
        packages = " ".join(shlex.quote(p) for p in image.apt_packages)
        lines.append("RUN export DEBIAN_FRONTEND=noninteractive && apt-get update -qq && "
                     f"apt-get install -y -qq --no-install-recommends {packages} && rm -rf /var/lib/apt/lists/*")
    wanted = image.pip_packages + image.file_packages()
    if wanted:
        packages = " ".join(shlex.quote(p) for p in wanted)
        cert = ""
        if ca is not None:
            lines.append(f"COPY {_CA_NAME} /etc/flyte-nb/{_CA_NAME}")
            cert = f" PIP_CERT=/etc/flyte-nb/{_CA_NAME}"
        lines.append(f"RUN export DEBIAN_FRONTEND=noninteractive PIP_BREAK_SYSTEM_PACKAGES=1{cert} && "
                     "(python3 -m pip --version > /dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq "
                     "--no-install-recommends python3-pip && rm -rf /var/lib/apt/lists/*)) && "
                     f"python3 -m pip install --no-cache-dir --disable-pip-version-check {packages}")
    for key, value in image.env_vars:
        lines.append(f"ENV {key}={json.dumps(value)}")
    lines += [f"RUN {command}" for command in image.commands]
    return "\n".join(lines) + "\n"


def _build(client: Any, tag: str, digest: str, log: Callable[[str, str], None], **kwargs: Any) -> None:
    log(tag, "building (only once: the tag is the Image's digest)")
    tail: deque[str] = deque(maxlen=15)
    step = "?"
    try:
        for chunk in client.api.build(tag=tag, rm=True, forcerm=True, decode=True,
                                      labels={f"{LABEL}.image": digest}, **kwargs):
            text = chunk.get("stream")
            if text:
                for line in text.rstrip("\n").splitlines():
                    if line.startswith("Step "):
                        step = line
                    tail.append(line)
                    log(tag, line)
            error = chunk.get("error") or (chunk.get("errorDetail") or {}).get("message")
            if error:
                raise ImageBuildError(f"building image {tag} failed at {step!r}: {error.strip()}\n"
                                      "last build log lines:\n" + "\n".join(tail))
    except ImageBuildError:
        raise
    except Exception as error:  # noqa: BLE001 - API errors (bad Dockerfile…) read the same way
        raise ImageBuildError(f"building image {tag} failed at {step!r}: {error}\nlast build log lines:\n"
                              + "\n".join(tail)) from None


def image_ref(client: Any, image: Any, locks: dict[str, threading.Lock], log: Callable[[str, str], None]) -> str:
    """The local image reference for an environment's ``image``, built first if needed (``log`` gets build lines)."""
    from ...engine.image import Image

    if isinstance(image, str):
        return BASE_IMAGE if image == "auto" else image
    assert isinstance(image, Image)
    base = image.base or BASE_IMAGE
    extras = bool(image.pip_packages or image.apt_packages or image.env_vars or image.commands
                  or image.package_files)
    if not image.dockerfile and not extras:
        return base
    tag = f"{image.name or BUILT_REPOSITORY}:{image.digest}"
    lock = locks.setdefault(tag, threading.Lock())
    with lock:
        if _exists(client, tag):
            return tag
        if image.dockerfile:
            path = Path(image.dockerfile)
            first = f"{tag}-dockerfile" if extras else tag
            if not _exists(client, first):
                _build(client, first, image.digest, log, path=str(path.parent), dockerfile=path.name)
            base = first
        if extras:
            require(client, base)
            ca = host_ca_bundle() if image.pip_packages or image.package_files else None
            _build(client, tag, image.digest, log, fileobj=_context(_dockerfile_steps(image, base, ca), ca),
                   custom_context=True)
    return tag


def require(client: Any, ref: str) -> Any:
    """The image ``ref`` on the daemon, or a ConfigurationError saying how to get it there."""
    import docker

    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        hint = "run scripts/docker-setup" if ref == BASE_IMAGE else f"`docker pull {ref}` or `docker build -t {ref} .`"
        raise ConfigurationError(f"image {ref!r} is not available to the Docker daemon (flyte_nb never pulls): "
                                 f"{hint}, or use flyte_nb.Image(...) to have it built") from None


def check_python(client: Any, image_id: str, ref: str, checked: dict[str, str]) -> None:
    """Once per image: its python3 must have the kernel's minor version (cloudpickle needs it)."""
    if image_id in checked:
        return
    want = "%d.%d" % sys.version_info[:2]
    try:
        output = client.containers.run(
            image_id, ["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], remove=True,
            labels=_labels(), network_mode="none")
        have = output.decode().strip()
    except Exception as error:  # noqa: BLE001 - no python3 in the image, usually
        reason = str(error).splitlines()[0][:160]
        raise ConfigurationError(f"image {ref!r} cannot run python3 ({reason}); tasks need Python {want} in the "
                                 "image: use Image.from_debian_base() or an image with python3") from None
    if have != want:
        raise ConfigurationError(f"image {ref!r} has Python {have} but this kernel runs {want}; tasks are shipped "
                                 f"with cloudpickle, which needs the same version: use an image with Python {want}")
    checked[image_id] = ""


def _exists(client: Any, ref: str) -> bool:
    import docker

    try:
        client.images.get(ref)
    except docker.errors.ImageNotFound:
        return False
    return True
