"""The frame view of a window: how well the DCASE 2020 autoencoder rebuilds its raw log-mel frames.

The diffusion network sees a window's log-mel with its level removed, as a wavelet image; the
clip Gaussian sees a span's band means and spreads. What neither sees is what the DCASE
baseline sees: every 5 frames (~0.2 s) of log-mel (128 bands, level kept) squeezed through an
8-wide bottleneck learnt on this machine's normal sound. On the real UrbanSound8K sets it is the
reference the recipe lost to most (drilling and jackhammer, docs/quality.md round 7), so a
diffusion bundle trains one beside its network and scores it as one more component (`frames`):
the log of the window's mean squared reconstruction error, z-scaled on held-out audio like the
others. The network is the baseline's own (sentinel.baseline.autoencoder), so the component is
what the reference measures, on the same windows, with one difference: a window's level is first
moved up to `level_tolerance_db` towards the training windows' mean level (in training and in
scoring alike), so that a microphone 6 dB hotter is no evidence here either. Without it a normal
recording 6 dB louder raised 92 alerts in the daemon test of a gain change (docs/quality.md round 8).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from sentinel.baseline.autoencoder import FEATURES, AutoencoderConfig, DenseAutoencoder, stack_frames
from sentinel.features.mel import LogMel


class FrameReconstruction(nn.Module):
    """waveform windows [B, N] -> [B] log mean squared reconstruction error of their stacked frames."""

    def __init__(self, config: AutoencoderConfig, sample_rate: int, level: float | None = None) -> None:
        super().__init__()
        self.config = config
        self.sample_rate = sample_rate
        self.level = level
        """Mean level (mean log-mel, dB) of the training windows, towards which a window's level is
        moved; None: levels kept as they are (bundles trained before the gain tolerance)."""
        self.log_mel = LogMel(dataclasses.replace(FEATURES, sample_rate=sample_rate))
        self.net = DenseAutoencoder(config)

    def levelled(self, log_mel: torch.Tensor, tolerance_db: float) -> torch.Tensor:
        """[..., mels, T] log-mel of windows, each one's level moved up to `tolerance_db` towards the
        training level."""
        if self.level is None or tolerance_db <= 0:
            return log_mel
        shift = (log_mel.mean(dim=(-2, -1)) - self.level).clamp(-tolerance_db, tolerance_db)
        return log_mel - shift[..., None, None]

    def stacked(self, log_mel: torch.Tensor, tolerance_db: float = 0.0) -> torch.Tensor:
        """[..., vectors, frames * mels]: the stacked frames of windows' log-mel [..., mels, T],
        levelled."""
        return stack_frames(self.levelled(log_mel, tolerance_db), self.config.frames)

    def vectors(self, wave: torch.Tensor, tolerance_db: float = 0.0) -> torch.Tensor:
        """[..., vectors, frames * mels]: the stacked log-mel frames of waveforms [..., N]."""
        return self.stacked(self.log_mel(wave), tolerance_db)

    def forward(self, windows: torch.Tensor, tolerance_db: float = 0.0) -> torch.Tensor:
        v = self.vectors(windows, tolerance_db)
        flat = v.reshape(-1, v.shape[-1])
        err = (self.net(flat) - flat).pow(2).mean(-1).reshape(v.shape[:2]).mean(-1)
        # log: the error is skewed (a foreign sound multiplies it); z-scaling wants it symmetric
        return err.clamp_min(1e-6).log()

    def tensors(self) -> dict[str, torch.Tensor]:
        """What a bundle saves: the autoencoder's weights and batch-norm statistics (the mel filters
        are rebuilt from the sample rate), and the training level."""
        out = {f"frames.{k}": v for k, v in self.net.state_dict().items()}
        if self.level is not None:
            out["frames.level"] = torch.tensor([self.level])
        return out

    @classmethod
    def from_tensors(cls, config: AutoencoderConfig, sample_rate: int, tensors: dict[str, torch.Tensor]
                     ) -> FrameReconstruction:
        level = tensors.get("frames.level")
        out = cls(config, sample_rate, None if level is None else float(level.reshape(-1)[0]))
        out.net.load_state_dict({k.removeprefix("frames."): v for k, v in tensors.items()
                                 if k.startswith("frames.") and k != "frames.level"})
        return out.eval()
