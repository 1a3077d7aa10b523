"""Checkpoints tied to the configuration that produced them.

A checkpoint stores a *fingerprint*: a flat dict of the experiment's config fields, the model
class and its parameter shapes. Loading one whose fingerprint differs raises
:class:`~corex_edu.errors.CheckpointMismatchError` listing the differing fields, so a result is
never silently computed from a model trained under another configuration.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from corex_edu import atomic
from corex_edu.errors import CheckpointMismatchError, DataIntegrityError

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1


def fingerprint(config: Any, model: nn.Module | None = None) -> dict[str, Any]:
    """Return a JSON-like dict that identifies ``config`` (a dataclass or mapping) and ``model``'s architecture."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        fields = dataclasses.asdict(config)
        kind = type(config).__name__
    elif isinstance(config, Mapping):
        fields, kind = dict(config), "mapping"
    else:
        raise TypeError(f"config must be a dataclass instance or a mapping, got {type(config).__name__}")
    result: dict[str, Any] = {"config_type": kind}
    result.update({key: _plain(value) for key, value in fields.items()})
    if model is not None:
        result["model_class"] = type(model).__name__
        result["parameter_shapes"] = {name: list(parameter.shape) for name, parameter in model.state_dict().items()}
    return result


def _plain(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def describe_mismatch(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Return one line per field that differs between two fingerprints."""
    lines = []
    for key in sorted(set(saved) | set(current)):
        if saved.get(key, "<absent>") != current.get(key, "<absent>"):
            if key == "parameter_shapes":
                lines.append("parameter_shapes: the network architecture differs")
            else:
                lines.append(f"{key}: saved {saved.get(key, '<absent>')!r}, current {current.get(key, '<absent>')!r}")
    return lines


def save(path: str | os.PathLike[str], state: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    """Write ``state`` with its fingerprint to ``path`` atomically."""
    atomic.torch_save({"format_version": FORMAT_VERSION, "fingerprint": dict(expected), **state}, path)


def load(path: str | os.PathLike[str], expected: Mapping[str, Any], map_location: str | torch.device = "cpu") -> dict[str, Any] | None:
    """Return the checkpoint at ``path``, ``None`` if there is none.

    Raises:
        CheckpointMismatchError: the checkpoint was saved under another configuration.
        DataIntegrityError: the file is unreadable (truncated or not a checkpoint).
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as error:  # torch raises several types for a damaged file
        raise DataIntegrityError(f"checkpoint {path} is unreadable ({type(error).__name__}: {error}); delete it to retrain") from error
    if not isinstance(state, dict) or "fingerprint" not in state:
        raise DataIntegrityError(f"{path} is not a corex_edu checkpoint; delete it or choose another checkpoint path")
    differences = describe_mismatch(state["fingerprint"], expected)
    if differences:
        raise CheckpointMismatchError(
            f"checkpoint {path} was saved under another configuration:\n  "
            + "\n  ".join(differences)
            + f"\nDelete {path} to retrain with the current configuration, or pass a different checkpoint path."
        )
    logger.info("loaded checkpoint %s (epoch %s)", path, state.get("epoch"))
    return state
