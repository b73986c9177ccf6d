"""Picking the compute device."""

from __future__ import annotations

import torch

from sentinel.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """'auto' takes the GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r}: no CUDA GPU is visible; use --device cpu or auto")
    if name != "cpu" and not name.startswith("cuda"):
        raise ConfigError(f"device {name!r}: unknown; use auto, cpu or cuda[:N]")
    return torch.device(name)
