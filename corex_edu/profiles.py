"""Run profiles and device selection.

Three profiles size every experiment:

``quick``
    Minutes on two CPU cores. Checks the wiring and the direction of each effect, for CI.
``standard``
    The default main job: meaningful numbers on a two-core CPU.
``paper``
    The network and data sizes of Gao et al. (AISTATS 2019), meant for a GPU.

Each experiment module keeps one frozen config dataclass per profile in a dict keyed by
these names, and :func:`select` picks from it.
"""

from __future__ import annotations

import os
from typing import Mapping, TypeVar

import torch

from corex_edu.errors import ConfigurationError

PROFILE_NAMES = ("quick", "standard", "paper")
DEFAULT_PROFILE = "standard"
DEVICE_NAMES = ("auto", "cpu", "cuda")
PROFILE_ENVIRONMENT_VARIABLE = "COREX_EDU_PROFILE"

ConfigT = TypeVar("ConfigT")


def resolve_profile(name: str | None = None) -> str:
    """Return a valid profile name: ``name``, else ``$COREX_EDU_PROFILE``, else ``standard``.

    Raises:
        ConfigurationError: the name is not one of ``quick``, ``standard`` or ``paper``.
    """
    if name is None or name == "":
        name = os.environ.get(PROFILE_ENVIRONMENT_VARIABLE) or DEFAULT_PROFILE
        source = f"${PROFILE_ENVIRONMENT_VARIABLE}" if os.environ.get(PROFILE_ENVIRONMENT_VARIABLE) else "default"
    else:
        source = "argument"
    if name not in PROFILE_NAMES:
        raise ConfigurationError(
            f"unknown profile {name!r} (from {source}); choose one of {', '.join(PROFILE_NAMES)}, "
            f"for example --profile quick or {PROFILE_ENVIRONMENT_VARIABLE}=quick"
        )
    return name


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """Return the torch device for ``auto``, ``cpu`` or ``cuda`` (``cuda:N`` is accepted too).

    ``auto`` picks CUDA when PyTorch can see a GPU and the CPU otherwise.

    Raises:
        ConfigurationError: the name is unknown, or CUDA is requested but not available.
    """
    if isinstance(name, torch.device):
        name = str(name)
    base = name.split(":", 1)[0]
    if base not in DEVICE_NAMES or (base != "cuda" and ":" in name):
        raise ConfigurationError(
            f"unknown device {name!r}; choose one of {', '.join(DEVICE_NAMES)} (or cuda:N), for example --device cpu"
        )
    if base == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if base == "cuda" and not torch.cuda.is_available():
        raise ConfigurationError(
            f"device {name!r} was requested but PyTorch {torch.__version__} sees no CUDA GPU; "
            "use --device cpu (or auto), or install a CUDA build of PyTorch on a machine with a GPU"
        )
    return torch.device(name)


def select(configs: Mapping[str, ConfigT], profile: str | None = None) -> ConfigT:
    """Return the config for ``profile`` (resolved as in :func:`resolve_profile`)."""
    return configs[resolve_profile(profile)]
