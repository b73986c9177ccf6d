"""Audio windows -> normalised model input, batched, on the scorer's device."""

from __future__ import annotations

import torch
from torch import nn

from sentinel.features.mel import LogMel
from sentinel.features.spec import FeatureSpec
from sentinel.features.wavelet import dwt2_channels, mel_plus_details


class FeatureExtractor(nn.Module):
    """waveform windows [B, window_samples] -> model input [B, C, H, W].

    The log-mel is standardised per mel bin with statistics of normal training audio
    (buffers saved in the bundle). The clip's overall level is deliberately *not* removed:
    a machine that gets louder is a fault we want to see, so level is kept as evidence.
    """

    def __init__(self, spec: FeatureSpec) -> None:
        super().__init__()
        self.spec = spec
        self.log_mel = LogMel(spec)
        self.register_buffer("bin_mean", torch.zeros(spec.n_mels))
        self.register_buffer("bin_std", torch.ones(spec.n_mels))

    def fit_normalisation(self, log_mels: list[torch.Tensor]) -> None:
        """Per-bin mean and std over all frames of normal recordings' log-mels [n_mels, T]."""
        frames = torch.cat([m.reshape(self.spec.n_mels, -1) for m in log_mels], dim=1)
        self.bin_mean.copy_(frames.mean(dim=1))
        self.bin_std.copy_(frames.std(dim=1).clamp_min(1e-3))

    def normalise(self, log_mel: torch.Tensor) -> torch.Tensor:
        return (log_mel - self.bin_mean[:, None]) / self.bin_std[:, None]

    def to_input(self, norm_mel: torch.Tensor) -> torch.Tensor:
        """Normalised log-mel patches [B, n_mels, frames] -> the configured representation."""
        x = norm_mel.unsqueeze(1)
        if self.spec.representation == "wavelet":
            return dwt2_channels(x, self.spec.wavelet)
        if self.spec.representation == "mel+wavelet":
            return mel_plus_details(x, self.spec.wavelet)
        return x

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return self.to_input(self.normalise(self.log_mel.window(windows)))
