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
    (buffers saved in the bundle). With `spec.remove_level` each window's level (mean log-mel,
    dB) is subtracted first: on the dev set a +-3 dB microphone gain spread hid the change of a
    single harmonic (imbalance) from every score. A machine that gets louder is still a fault,
    so the level is returned beside the input and scored on its own (`inputs`).
    """

    def __init__(self, spec: FeatureSpec) -> None:
        super().__init__()
        self.spec = spec
        self.log_mel = LogMel(spec)
        self.register_buffer("bin_mean", torch.zeros(spec.n_mels))
        self.register_buffer("bin_std", torch.ones(spec.n_mels))

    def fit_normalisation(self, log_mels: list[torch.Tensor]) -> None:
        """Per-bin mean and std over all frames of normal recordings' log-mels [n_mels, T]."""
        frames = torch.cat([self._window_frames(m.reshape(self.spec.n_mels, -1)) for m in log_mels], dim=1)
        self.bin_mean.copy_(frames.mean(dim=1))
        self.bin_std.copy_(frames.std(dim=1).clamp_min(1e-3))

    def _window_frames(self, log_mel: torch.Tensor) -> torch.Tensor:
        """[n_mels, T] as the model sees it: cut into whole windows, each with its level removed."""
        if not self.spec.remove_level:
            return log_mel
        n = self.spec.window_frames
        if log_mel.shape[-1] < n:
            return self.remove_level(log_mel)
        windows = log_mel[:, : log_mel.shape[-1] // n * n].unflatten(-1, (-1, n))  # [n_mels, k, n]
        return self.remove_level(windows.transpose(0, 1)).transpose(0, 1).reshape(self.spec.n_mels, -1)

    @staticmethod
    def level(log_mel: torch.Tensor) -> torch.Tensor:
        """[...] mean log-mel of each window [..., n_mels, frames], in dB."""
        return log_mel.mean(dim=(-2, -1))

    def remove_level(self, log_mel: torch.Tensor) -> torch.Tensor:
        return log_mel - self.level(log_mel)[..., None, None]

    def normalise(self, log_mel: torch.Tensor) -> torch.Tensor:
        """Window log-mels [..., n_mels, frames] -> standardised (level removed if configured)."""
        if self.spec.remove_level:
            log_mel = self.remove_level(log_mel)
        return (log_mel - self.bin_mean[:, None]) / self.bin_std[:, None]

    def to_input(self, norm_mel: torch.Tensor) -> torch.Tensor:
        """Normalised log-mel patches [B, n_mels, frames] -> the configured representation."""
        x = norm_mel.unsqueeze(1)
        if self.spec.representation == "wavelet":
            return dwt2_channels(x, self.spec.wavelet)
        if self.spec.representation == "mel+wavelet":
            return mel_plus_details(x, self.spec.wavelet)
        return x

    def inputs(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """waveform windows [B, samples] -> (model input [B, C, H, W], level of each window [B], dB)."""
        log_mel = self.log_mel.window(windows)
        return self.to_input(self.normalise(log_mel)), self.level(log_mel)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return self.inputs(windows)[0]
