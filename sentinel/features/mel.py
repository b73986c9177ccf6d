"""Log-mel spectrogram in torch, on whatever device the module lives on."""

from __future__ import annotations

import torch
import torchaudio
from torch import nn

from sentinel.features.spec import FeatureSpec


class LogMel(nn.Module):
    """waveform [B, N] -> log-mel in dB [B, n_mels, frames].

    Frames are centred (frame i at sample i * hop), so a crop of a long recording's log-mel
    equals the log-mel of the matching waveform window away from the edges: training crops
    whole-file spectrograms, scoring transforms windows, and both see the same numbers.
    """

    def __init__(self, spec: FeatureSpec) -> None:
        super().__init__()
        self.spec = spec
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=spec.sample_rate,
            n_fft=spec.n_fft,
            hop_length=spec.hop_length,
            n_mels=spec.n_mels,
            f_min=spec.f_min,
            f_max=spec.f_max,
            power=2.0,
            center=True,
        )

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        power = self.mel(wave)
        return 10.0 * torch.log10(power + 1e-10)

    def window(self, wave: torch.Tensor) -> torch.Tensor:
        """Exactly `window_frames` frames for windows of `window_samples` samples."""
        return self(wave)[..., : self.spec.window_frames]
