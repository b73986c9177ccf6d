"""Cutting a recording into the fixed-size, overlapping windows that the scorer sees."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Windows:
    samples: torch.Tensor
    """[n, size] windows."""
    starts: list[int]
    """Start of each window, in samples from the beginning of the recording."""


def sliding_windows(wave: torch.Tensor, size: int, hop: int) -> Windows:
    """Windows every `hop` samples; a last window is aligned to the end so no tail goes unscored.

    A recording shorter than one window yields none: the caller decides what that means.
    """
    n = wave.shape[-1]
    if n < size:
        return Windows(wave.new_zeros((0, size)), [])
    out = wave.unfold(-1, size, hop)
    starts = list(range(0, n - size + 1, hop))
    if starts[-1] + size < n:
        starts.append(n - size)
        out = torch.cat([out, wave[None, n - size :]], dim=0)
    return Windows(out.contiguous(), starts)
