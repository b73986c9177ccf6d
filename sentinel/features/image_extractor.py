"""Images -> normalised model input: per-channel standardisation, then optionally a 2-D DWT
(the image counterpart of extractor.py; lives with the features so bundles need nothing from image/)."""

from __future__ import annotations

import torch
from torch import nn

from sentinel.features.image_spec import ImageSpec
from sentinel.features.wavelet import dwt2_channels


class ImageExtractor(nn.Module):
    """images [B, 3, size, size] in [0, 1] -> model input [B, C, H, W].

    Mean and std per colour channel come from normal training images (buffers in the bundle).
    The same interface as the audio FeatureExtractor (`spec`, `forward`, `inputs`), so the scorer does
    not know which it has.
    """

    def __init__(self, spec: ImageSpec) -> None:
        super().__init__()
        self.spec = spec
        self.register_buffer("channel_mean", torch.zeros(3))
        self.register_buffer("channel_std", torch.ones(3))

    def fit_normalisation(self, images: torch.Tensor) -> None:
        self.channel_mean.copy_(images.mean(dim=(0, 2, 3)))
        self.channel_std.copy_(images.std(dim=(0, 2, 3)).clamp_min(1e-3))

    def to_input(self, norm: torch.Tensor) -> torch.Tensor:
        if self.spec.representation == "rgb":
            return norm
        b, c, h, w = norm.shape
        bands = dwt2_channels(norm.reshape(b * c, 1, h, w), self.spec.wavelet)  # [B*3, 4, h/2, w/2]
        return bands.reshape(b, c * 4, h // 2, w // 2)

    def inputs(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(model input, a zero level per image): brightness is left to the network, so the
        scorer's level component is constant for images."""
        return self(images), torch.zeros(images.shape[0], device=images.device)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        norm = (images - self.channel_mean[:, None, None]) / self.channel_std[:, None, None]
        return self.to_input(norm)
