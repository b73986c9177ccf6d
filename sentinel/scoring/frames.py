"""The frame view of a window: how well the DCASE 2020 autoencoder rebuilds its raw log-mel frames.

The diffusion network sees a window's log-mel with its level removed, as a wavelet image; the
clip Gaussian sees a span's band means and spreads. What neither sees is what the DCASE
baseline sees: every 80 ms of raw log-mel (5 frames of 128 bands, level kept) squeezed through an
8-wide bottleneck learnt on this machine's normal sound. On the real UrbanSound8K sets it is the
reference the recipe lost to most (drilling and jackhammer, docs/quality.md round 7), so a
diffusion bundle trains one beside its network and scores it as one more component (`frames`):
the log of the window's mean squared reconstruction error, z-scaled on held-out audio like the
others. The network is the baseline's own (sentinel.baseline.autoencoder), so the component is
exactly what the reference measures, on the same windows.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from sentinel.baseline.autoencoder import FEATURES, AutoencoderConfig, DenseAutoencoder, stack_frames
from sentinel.features.mel import LogMel


class FrameReconstruction(nn.Module):
    """waveform windows [B, N] -> [B] log mean squared reconstruction error of their stacked frames."""

    def __init__(self, config: AutoencoderConfig, sample_rate: int) -> None:
        super().__init__()
        self.config = config
        self.sample_rate = sample_rate
        self.log_mel = LogMel(dataclasses.replace(FEATURES, sample_rate=sample_rate))
        self.net = DenseAutoencoder(config)

    def vectors(self, wave: torch.Tensor) -> torch.Tensor:
        """[..., vectors, frames * mels]: the stacked raw log-mel frames of waveforms [..., N]."""
        return stack_frames(self.log_mel(wave), self.config.frames)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        v = self.vectors(windows)
        flat = v.reshape(-1, v.shape[-1])
        err = (self.net(flat) - flat).pow(2).mean(-1).reshape(v.shape[:2]).mean(-1)
        # log: the error is skewed (a foreign sound multiplies it); z-scaling wants it symmetric
        return err.clamp_min(1e-6).log()

    def tensors(self) -> dict[str, torch.Tensor]:
        """What a bundle saves: the autoencoder's weights and batch-norm statistics (the mel filters
        are rebuilt from the sample rate)."""
        return {f"frames.{k}": v for k, v in self.net.state_dict().items()}

    @classmethod
    def from_tensors(cls, config: AutoencoderConfig, sample_rate: int, tensors: dict[str, torch.Tensor]
                     ) -> FrameReconstruction:
        out = cls(config, sample_rate)
        out.net.load_state_dict({k.removeprefix("frames."): v for k, v in tensors.items() if k.startswith("frames.")})
        return out.eval()
