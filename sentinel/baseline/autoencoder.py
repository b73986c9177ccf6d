"""The DCASE 2020 Task 2 baseline: a dense autoencoder on 5 stacked log-mel frames.

Log-mel 128 bins, n_fft 1024, hop 512; 5 consecutive frames stacked into 640 inputs; dense
layers 128-128-128-128-8-128-128-128-128 with batch norm and ReLU; MSE; the anomaly score of a
clip is the mean reconstruction error of its vectors. Here a window's score is the mean over its
vectors and a file's score the mean over its windows (`file_aggregate: mean`), which weighs each
vector of a clip almost equally, as DCASE does.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated

import torch
from pydantic import ConfigDict, Field
from torch import nn

from sentinel.features.extractor import FeatureExtractor
from sentinel.features.spec import FeatureSpec
from sentinel.scoring.config import ScoringConfig
from sentinel.scoring.postprocess import PostProcessor
from sentinel.scoring.scorer import ScoreResult, WindowScorer

# DCASE's features; 32 frames of hop 512 = 1.024 s windows, the diffusion model's window length.
FEATURES = FeatureSpec(n_fft=1024, hop_length=512, n_mels=128, window_frames=32, representation="mel",
                       remove_level=False)
SCORING = ScoringConfig(file_aggregate="mean", weights={"recon_mean": 1.0}, combine="mean")


@dataclass(frozen=True)
class AutoencoderConfig:
    """The baseline's shape and optimisation (DCASE 2020 defaults)."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    frames: Annotated[int, Field(ge=1, description="Consecutive log-mel frames stacked into one input vector.")] = 5
    hidden: Annotated[int, Field(ge=1, description="Width of the hidden dense layers.")] = 128
    bottleneck: Annotated[int, Field(ge=1, description="Width of the bottleneck layer.")] = 8
    epochs: Annotated[int, Field(ge=1, description="Passes over all training vectors.")] = 100
    batch_size: Annotated[int, Field(ge=1, description="Vectors per optimiser step.")] = 512
    learning_rate: Annotated[float, Field(gt=0, description="Adam learning rate.")] = 1e-3
    n_mels: Annotated[int, Field(ge=1, description="Mel bins (fixed by the features; not user-set).")] = 128

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def inputs(self) -> int:
        return self.frames * self.n_mels


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Linear(cin, cout), nn.BatchNorm1d(cout), nn.ReLU()]


class DenseAutoencoder(nn.Module):
    def __init__(self, config: AutoencoderConfig) -> None:
        super().__init__()
        self.config = config
        h, d = config.hidden, config.inputs
        widths = [d, h, h, h, h, config.bottleneck, h, h, h, h]
        layers: list[nn.Module] = []
        for cin, cout in zip(widths, widths[1:], strict=False):
            layers += _block(cin, cout)
        self.net = nn.Sequential(*layers, nn.Linear(h, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def stack_frames(log_mel: torch.Tensor, frames: int) -> torch.Tensor:
    """[..., n_mels, T] -> [..., T - frames + 1, frames * n_mels] (frame-major, as DCASE stacks them)."""
    windows = log_mel.unfold(-1, frames, 1)  # [..., n_mels, T', frames]
    return windows.permute(*range(windows.dim() - 3), -2, -1, -3).flatten(-2)


class AutoencoderScorer(WindowScorer):
    """Scores waveform windows with the baseline: mean squared reconstruction error of their vectors."""

    def __init__(self, model: DenseAutoencoder, extractor: FeatureExtractor, config: ScoringConfig,
                 post: PostProcessor | None = None, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.extractor = extractor.to(self.device)
        self.config = config
        self.post = post if post is not None else PostProcessor(config)  # file score and verdict; no scaling
        self.batch_size = config.batch_size or 256

    @torch.inference_mode()
    def score(self, windows: torch.Tensor) -> ScoreResult:
        out = []
        for chunk in windows.split(self.batch_size):
            vectors = stack_frames(self.extractor.log_mel.window(chunk.to(self.device, torch.float32)),
                                   self.model.config.frames)
            flat = vectors.reshape(-1, vectors.shape[-1])
            err = (self.model(flat) - flat).pow(2).mean(-1).reshape(vectors.shape[:2])
            out.append(err.mean(-1))
        scores = torch.cat(out).cpu() if out else torch.zeros(0)
        return ScoreResult(scores, {"recon_mean": scores})
