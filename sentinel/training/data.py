"""Normal recordings for training: read once, kept as log-mels, cut into random windows."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from sentinel.audio import find_audio, windowable
from sentinel.errors import DataError
from sentinel.features.spec import FeatureSpec


@dataclass
class Recording:
    path: Path
    wave: torch.Tensor  # [N] at the model rate

    @property
    def group(self) -> str:
        """Recordings of one session or source share this: the first number in the file name
        (UrbanSound8K's freesound id in `134717-0-0-12.wav`, the recorder's date in
        `20261202T011500.250Z.flac`); a name without a number is a group of its own."""
        m = _FIRST_NUMBER.search(self.path.stem)
        return m.group(0) if m else str(self.path)


_FIRST_NUMBER = re.compile(r"\d+")


def load_recordings(
    paths: list[str | Path], spec: FeatureSpec, on_error: Callable[[str], None] | None = None
) -> list[Recording]:
    """Every readable recording at least one window long. Bad files are reported and skipped."""
    files = find_audio(paths)
    if not files:
        raise DataError(f"{', '.join(map(str, paths))}: no audio files found (wav, flac, ogg, mp3, ...)")
    out = [Recording(f, wave) for f, wave in
           windowable(files, spec.sample_rate, spec.window_samples, on_error or (lambda m: None))]
    if not out:
        raise DataError(f"{', '.join(map(str, paths))}: none of {len(files)} audio files is usable")
    return out


class CropSampler:
    """Random window-sized crops of whole-recording log-mels.

    Computing each recording's spectrogram once and cropping frames is many times cheaper than
    transforming every random waveform window, and gives the same frames (centred STFT).
    """

    def __init__(self, log_mels: list[torch.Tensor], window_frames: int) -> None:
        self.log_mels = [m for m in log_mels if m.shape[-1] >= window_frames]
        self.frames = window_frames
        lengths = torch.tensor([m.shape[-1] - window_frames + 1 for m in self.log_mels], dtype=torch.float)
        self.weights = lengths / lengths.sum()

    def sample(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """[batch, n_mels, window_frames]."""
        which = torch.multinomial(self.weights, batch, replacement=True, generator=generator)
        crops = []
        for i in which.tolist():
            m = self.log_mels[i]
            start = int(torch.randint(0, m.shape[-1] - self.frames + 1, (1,), generator=generator))
            crops.append(m[:, start : start + self.frames])
        return torch.stack(crops)


class FleetSampler:
    """Windows of several machines, and of sound that is none of them (outliers), for one fleet
    network: each batch is drawn evenly over the machines, with `outlier_share` of it outliers.
    `sample` gives (crops, ids): ids 1..machines, 0 for an outlier."""

    def __init__(self, machines: list[CropSampler], outliers: CropSampler | None = None,
                 outlier_share: float = 0.2) -> None:
        self.machines, self.outliers = machines, outliers
        self.outlier_share = outlier_share if outliers is not None else 0.0

    def sample(self, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        n_out = round(self.outlier_share * batch)
        ids = torch.cat([torch.randint(1, len(self.machines) + 1, (batch - n_out,), generator=generator),
                         torch.zeros(n_out, dtype=torch.long)])
        parts: list[torch.Tensor] = []
        order: list[torch.Tensor] = []
        for m in ids.unique().tolist():
            rows = (ids == m).nonzero().flatten()
            sampler = self.outliers if m == 0 else self.machines[m - 1]
            assert sampler is not None
            parts.append(sampler.sample(len(rows), generator))
            order.append(rows)
        crops = torch.empty((batch, *parts[0].shape[1:]), dtype=parts[0].dtype)
        for rows, part in zip(order, parts, strict=True):
            crops[rows] = part
        return crops, ids
