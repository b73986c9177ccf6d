"""Anomaly maps for images: how far each patch is from its nearest normal patch.

A reconstruction residual measures how hard a patch is to rebuild, not how unusual it is: busy
normal texture leaves large residuals, and a defect that *removes* texture (a blur, a flat stain,
a hole) is easy to rebuild, so it ranks below normal pixels (benchmarks/textures.py, round 2 in
docs/quality.md). Here each location of an image is described by
- the denoiser's encoder features at its two finest scales (what the diffusion model learnt to see
  in normal images), averaged over a 3 x 3 neighbourhood, and
- the log energy of every model-input channel (wavelet sub-bands) in 3, 7 and 15 px windows
  (how much texture there is at each scale: what a blur or a flat stain takes away),
each channel standardised on normal images and each block scaled to equal weight (the features at
`feature_weight`). The map is the distance to the nearest of a memory of such descriptors from
normal training images (PatchCore's idea, with the denoiser in place of a pretrained backbone),
smoothed, and z-scaled on held-out normal images: 0 is typical, 3 is rare. The image score is
the mean of the map's top `top_fraction` of pixels.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Annotated

import torch
import torch.nn.functional as F
from pydantic import ConfigDict, Field

from sentinel.diffusion.unet import UNet


@dataclass(frozen=True)
class PatchMapConfig:
    """How image anomaly maps are made. Saved in the bundle."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    grid: Annotated[int, Field(ge=4, description="Map locations per side (before upsampling to the image).")] = 32
    feature_weight: Annotated[
        float, Field(ge=0, description="Weight of the denoiser's features against the texture energy (1 = equal).")
    ] = 0.5
    energy_windows: Annotated[
        tuple[int, ...], Field(min_length=1, description="Window sizes (model-input px, odd) of the energy terms.")
    ] = (3, 7, 15)
    memory_size: Annotated[
        int, Field(ge=16, description="Normal patch descriptors kept (a seeded random subset): 4096 scores in a "
                   "quarter of the time of 16384 with the same maps (benchmarks/textures.py).")
    ] = 4096
    smoothing_px: Annotated[float, Field(ge=0, description="Gaussian smoothing of the map, image pixels.")] = 4.0
    top_fraction: Annotated[
        float, Field(gt=0, le=1, description="Image score: mean of this fraction of the map's highest pixels.")
    ] = 0.02

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["energy_windows"] = list(self.energy_windows)
        return d


def _gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """[B, H, W] -> the same, separable gaussian with reflected borders."""
    if sigma <= 0:
        return maps
    r = max(1, math.ceil(3 * sigma))
    x = torch.arange(-r, r + 1, dtype=maps.dtype, device=maps.device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    m = maps[:, None]
    m = F.conv2d(F.pad(m, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    m = F.conv2d(F.pad(m, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1))
    return m[:, 0]


def _to_grid(f: torch.Tensor, grid: int) -> torch.Tensor:
    if f.shape[-1] > grid:
        return F.adaptive_avg_pool2d(f, grid)
    if f.shape[-1] < grid:
        return F.interpolate(f, size=(grid, grid), mode="bilinear", align_corners=False)
    return f


class PatchMemory:
    """The normal patch memory and the statistics that turn distances into z-like maps."""

    def __init__(self, config: PatchMapConfig, memory: torch.Tensor, centre: torch.Tensor, scale: torch.Tensor,
                 input_stride: int = 1, map_mean: float = 0.0, map_std: float = 1.0) -> None:
        self.config = config
        self.memory = memory  # [N, D] descriptors, already centred and scaled
        self.centre = centre  # [D]
        self.scale = scale  # [D]: block weight / channel std
        self.input_stride = input_stride
        """Image pixels per model-input pixel (2 for the wavelet input)."""
        self.map_mean, self.map_std = map_mean, map_std

    # -- descriptors ----------------------------------------------------------------------------
    @staticmethod
    def raw_descriptors(model: UNet, x0: torch.Tensor, config: PatchMapConfig) -> tuple[torch.Tensor, int]:
        """[B, D, g, g] un-normalised descriptors of model inputs x0, and how many of the D
        channels are denoiser features (the rest are energies)."""
        grid = min(config.grid, x0.shape[-1])
        feats = model.encode(x0, 0)[:2]
        parts = [_to_grid(F.avg_pool2d(f.float(), 3, 1, 1, count_include_pad=False), grid) for f in feats]
        n_feat = sum(p.shape[1] for p in parts)
        sq = x0.float().pow(2)
        for k in config.energy_windows:
            energy = F.avg_pool2d(sq, k, 1, k // 2, count_include_pad=False)
            parts.append(_to_grid(energy.clamp_min(1e-6).log(), grid))
        return torch.cat(parts, 1), n_feat

    def describe(self, model: UNet, x0: torch.Tensor) -> torch.Tensor:
        """[B, D, g, g] descriptors in memory units."""
        raw, _ = self.raw_descriptors(model, x0, self.config)
        return (raw - self.centre[:, None, None]) * self.scale[:, None, None]

    # -- maps -----------------------------------------------------------------------------------
    def distances(self, desc: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
        """[B, D, g, g] -> [B, g, g]: distance of each location to its nearest memory entry."""
        b, d, h, w = desc.shape
        q = desc.float().permute(0, 2, 3, 1).reshape(-1, d)
        out = []
        # |q - m|^2 = |q|^2 - 2 q.m + |m|^2, one matrix product per chunk: in float32 even inside a
        # bf16 autocast, where the cancellation would eat the small distances that matter most.
        with torch.autocast(desc.device.type, enabled=False):
            mem_sq = self.memory.pow(2).sum(1)
            for part in q.split(chunk):
                d2 = part.pow(2).sum(1, keepdim=True) - 2 * part @ self.memory.T + mem_sq
                out.append(d2.min(1).values.clamp_min(0).sqrt())
        return torch.cat(out).reshape(b, h, w)

    def raw_map(self, model: UNet, x0: torch.Tensor) -> torch.Tensor:
        """[B, g, g] smoothed distances (before z-scaling)."""
        dist = self.distances(self.describe(model, x0))
        sigma = self.config.smoothing_px * dist.shape[-1] / (x0.shape[-1] * self.input_stride)
        return _gaussian_blur(dist, sigma)

    def maps(self, model: UNet, x0: torch.Tensor, size: int) -> torch.Tensor:
        """[B, size, size] z-like maps (0 typical of normal images, 3 rare)."""
        m = (self.raw_map(model, x0) - self.map_mean) / self.map_std
        return F.interpolate(m[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]

    def image_scores(self, maps: torch.Tensor) -> torch.Tensor:
        flat = maps.flatten(1)
        k = max(1, round(self.config.top_fraction * flat.shape[1]))
        return flat.topk(k, dim=1).values.mean(1)

    # -- fitting --------------------------------------------------------------------------------
    @classmethod
    def fit(cls, model: UNet, fit_inputs: torch.Tensor, holdout_inputs: torch.Tensor, config: PatchMapConfig,
            input_stride: int = 1, seed: int = 0, batch: int = 16) -> PatchMemory:
        """Memory from normal model inputs `fit_inputs`; the map's z-scaling from `holdout_inputs`,
        which neither the memory nor (if the caller held them out) the network has seen."""
        with torch.inference_mode():
            raws = [cls.raw_descriptors(model, x, config) for x in fit_inputs.split(batch)]
            n_feat = raws[0][1]
            flat = torch.cat([r.permute(0, 2, 3, 1).reshape(-1, r.shape[1]) for r, _ in raws])
            centre, std = flat.mean(0), flat.std(0).clamp_min(1e-4)
            n_energy = flat.shape[1] - n_feat
            weight = torch.cat([torch.full((n_feat,), config.feature_weight / math.sqrt(max(n_feat, 1))),
                                torch.full((n_energy,), 1.0 / math.sqrt(n_energy))]).to(flat)
            scale = weight / std
            gen = torch.Generator().manual_seed(seed)
            keep = torch.randperm(flat.shape[0], generator=gen)[: config.memory_size].to(flat.device)
            memory = ((flat[keep] - centre) * scale).contiguous()
            pm = cls(config, memory, centre, scale, input_stride)
            held = torch.cat([pm.raw_map(model, x) for x in holdout_inputs.split(batch)])
            pm.map_mean, pm.map_std = float(held.mean()), max(float(held.std()), 1e-6)
        return pm

    # -- bundle I/O -----------------------------------------------------------------------------
    def tensors(self) -> dict[str, torch.Tensor]:
        return {"patch.memory": self.memory, "patch.centre": self.centre, "patch.scale": self.scale}

    def meta(self) -> dict:
        return {"config": self.config.to_dict(), "map_mean": self.map_mean, "map_std": self.map_std}

    @classmethod
    def from_parts(cls, tensors: dict[str, torch.Tensor], meta: dict, config: PatchMapConfig,
                   input_stride: int) -> PatchMemory:
        memory, centre, scale = tensors["patch.memory"], tensors["patch.centre"], tensors["patch.scale"]
        if memory.dim() != 2 or centre.shape != scale.shape or centre.shape[0] != memory.shape[1]:
            raise ValueError(f"patch memory {tuple(memory.shape)} does not fit its centre {tuple(centre.shape)}")
        return cls(config, tensors["patch.memory"], tensors["patch.centre"], tensors["patch.scale"], input_stride,
                   float(meta["map_mean"]), float(meta["map_std"]))

    def to(self, device: torch.device) -> PatchMemory:
        return PatchMemory(self.config, self.memory.to(device), self.centre.to(device), self.scale.to(device),
                           self.input_stride, self.map_mean, self.map_std)
