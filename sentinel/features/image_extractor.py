"""Images -> normalised model input: per-channel standardisation, then optionally a 2-D DWT
(the image counterpart of extractor.py; lives with the features so bundles need nothing from image/)."""

from __future__ import annotations

import torch
from torch import nn

from sentinel.features.image_spec import ImageSpec
from sentinel.features.wavelet import dwt2_channels


class ImageExtractor(nn.Module):
    """images [B, C, H, W] in [0, 1] (C = 3, or 1 for a grey spec) -> model input [B, C', H', W'].

    Mean and std per colour channel come from normal training images (buffers in the bundle).
    The same interface as the audio FeatureExtractor (`spec`, `forward`, `inputs`), so the scorer does
    not know which it has. H and W must be even for the wavelet input (callers pad).
    """

    def __init__(self, spec: ImageSpec) -> None:
        super().__init__()
        self.spec = spec
        self.register_buffer("channel_mean", torch.zeros(spec.colour_channels))
        self.register_buffer("channel_std", torch.ones(spec.colour_channels))

    def fit_normalisation(self, images: torch.Tensor | list[torch.Tensor]) -> None:
        """From a batch [N, C, H, W] or a list of [C, H, W] images of any sizes (each pixel counts once)."""
        if isinstance(images, torch.Tensor):
            images = list(images)
        flat = torch.cat([im.flatten(1) for im in images], dim=1)
        self.channel_mean.copy_(flat.mean(1))
        self.channel_std.copy_(flat.std(1).clamp_min(1e-3))

    def to_input(self, norm: torch.Tensor) -> torch.Tensor:
        if self.spec.representation == "rgb":
            return norm
        b, c, h, w = norm.shape
        bands = dwt2_channels(norm.reshape(b * c, 1, h, w), self.spec.wavelet)  # [B*C, 4, h/2, w/2]
        return bands.reshape(b, c * 4, h // 2, w // 2)

    def inputs(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(model input, a zero level per image): brightness is left to the network, so the
        scorer's level component is constant for images."""
        return self(images), torch.zeros(images.shape[0], device=images.device)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        norm = (images - self.channel_mean[:, None, None]) / self.channel_std[:, None, None]
        return self.to_input(norm)
