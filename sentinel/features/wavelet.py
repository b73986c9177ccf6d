"""Wavelet-domain layout of a log-mel patch: a one-level 2-D DWT, sub-bands as channels.

ptwt runs the transform in torch (GPU-capable, batched); it matches pywavelets to 1e-6.
"""

from __future__ import annotations

import ptwt
import torch
import torch.nn.functional as F


def dwt2_channels(x: torch.Tensor, wavelet: str = "haar") -> torch.Tensor:
    """[B, 1, H, W] -> [B, 4, H/2, W/2] as (approximation, horizontal, vertical, diagonal)."""
    approx, details = ptwt.wavedec2(x, wavelet, level=1, mode="zero")
    return torch.cat([approx, *details], dim=1)


def mel_plus_details(x: torch.Tensor, wavelet: str = "haar") -> torch.Tensor:
    """[B, 1, H, W] -> [B, 4, H, W]: the log-mel and its three detail bands at full size."""
    bands = dwt2_channels(x, wavelet)[:, 1:]
    return torch.cat([x, F.interpolate(bands, scale_factor=2, mode="nearest")], dim=1)
