"""Accelerators as the SDK names them (``flyte.GPU("A100", 2)``, ``flyte.TPU(...)``, ``Device``).

Locally they only describe what a task asks for: the docker backend passes a GPU request on to
the daemon, the Dask backend turns it into a worker resource, and nothing checks model names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..errors import ConfigurationError

DeviceClass = Literal["GPU", "TPU", "NEURON", "AMD_GPU", "HABANA_GAUDI", "APPLE_SILICON"]


@dataclass(frozen=True)
class Device:
    """``quantity`` accelerators of ``device_class`` (and model ``device``, ``partition`` if given)."""

    quantity: int
    device_class: DeviceClass = "GPU"
    device: str | None = None
    partition: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.quantity, bool) or not isinstance(self.quantity, int) or self.quantity < 1:
            raise ConfigurationError(f"a device quantity must be a whole number >= 1, got {self.quantity!r}")


def _device(device_class: DeviceClass, device: str, quantity: int = 1, partition: str | None = None) -> Device:
    if not isinstance(device, str) or not device.strip():
        raise ConfigurationError(f"{device_class} needs a model name like 'A100', got {device!r}")
    return Device(quantity=quantity, device_class=device_class, device=device, partition=partition)


def GPU(device: str, quantity: int, partition: str | None = None) -> Device:  # noqa: N802 - the SDK's name
    return _device("GPU", device, quantity, partition)


def TPU(device: str, partition: str | None = None) -> Device:  # noqa: N802
    return _device("TPU", device, 1, partition)


def Neuron(device: str) -> Device:  # noqa: N802
    return _device("NEURON", device)


def AMD_GPU(device: str) -> Device:  # noqa: N802
    return _device("AMD_GPU", device)


def HABANA_GAUDI(device: str) -> Device:  # noqa: N802
    return _device("HABANA_GAUDI", device)


def APPLE_SILICON() -> Device:  # noqa: N802
    return Device(quantity=1, device_class="APPLE_SILICON", device="AppleSilicon")


def device_from_gpu(gpu: Any) -> Device | None:
    """``Resources.gpu`` (a count, ``"A100:2"`` or a ``Device``) as a ``Device``; None for none or 0."""
    if gpu is None or gpu == 0:
        return None
    if isinstance(gpu, Device):
        return gpu
    if isinstance(gpu, int):
        return Device(quantity=gpu)
    model, _, count = str(gpu).partition(":")
    try:
        return Device(quantity=int(count or 1), device=model)
    except ValueError:
        raise ConfigurationError(f"gpu must look like 'A100:2', got {gpu!r}") from None
