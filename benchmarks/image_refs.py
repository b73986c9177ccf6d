"""The two references benchmarks/textures.py measures beside Sentinel's maps, on the same images:

- PixelGaussian: each pixel's local statistics (7 x 7 mean of each colour, 7 x 7 grey std) as a
  Gaussian per pixel position over the normal images; map = RMS z over those statistics.
- PatchKNN: PatchCore's nearest-neighbour idea without a pretrained backbone: every location at
  half resolution described by its 7 x 7 grey patch and its local statistics, map = distance to
  the nearest of 16384 descriptors from normal images.

Both get the post-processing Sentinel's maps get (gaussian smoothing of 4 px, image score = mean
of the top 2 % of the map), so the comparison is of descriptors, not of bookkeeping.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sentinel.scoring.patch_memory import _gaussian_blur

SMOOTH_PX = 4.0
TOP_FRACTION = 0.02


def _finish(maps: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    if maps.shape[-1] != size:
        maps = F.interpolate(maps[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    maps = _gaussian_blur(maps, SMOOTH_PX)
    flat = maps.flatten(1)
    k = max(1, round(TOP_FRACTION * flat.shape[1]))
    return flat.topk(k, dim=1).values.mean(1), maps


def local_stats(images: torch.Tensor, k: int = 7) -> torch.Tensor:
    """[B, 3, S, S] -> [B, 4, S, S]: local mean of each colour, local std of grey."""
    grey = images.mean(1, keepdim=True)
    mean = F.avg_pool2d(images, k, 1, k // 2, count_include_pad=False)
    sq = F.avg_pool2d(grey**2, k, 1, k // 2, count_include_pad=False)
    gm = F.avg_pool2d(grey, k, 1, k // 2, count_include_pad=False)
    return torch.cat([mean, (sq - gm**2).clamp_min(1e-8).sqrt()], 1)


class PixelGaussian:
    def __init__(self, normal: torch.Tensor) -> None:
        f = local_stats(normal)
        self.mean, self.std = f.mean(0), f.std(0).clamp_min(1e-4)

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = (local_stats(images) - self.mean) / self.std
        return _finish(z.pow(2).mean(1).sqrt(), images.shape[-1])


class PatchKNN:
    def __init__(self, normal: torch.Tensor, memory: int = 16384, seed: int = 0) -> None:
        d = self.describe(normal)
        flat = d.permute(0, 2, 3, 1).reshape(-1, d.shape[1])
        self.centre, self.std = flat.mean(0), flat.std(0).clamp_min(1e-4)
        keep = torch.randperm(flat.shape[0], generator=torch.Generator().manual_seed(seed))[:memory]
        self.memory = (flat[keep] - self.centre) / self.std

    @staticmethod
    def describe(images: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> [B, 53, H/2, W/2] (any aspect ratio; benchmarks/magnetic_tile.py uses it too)."""
        grey = F.avg_pool2d(images.mean(1, keepdim=True), 2)
        h, w = grey.shape[-2:]
        patches = F.unfold(grey, 7, padding=3).reshape(len(images), 49, h, w)
        return torch.cat([patches, F.avg_pool2d(local_stats(images), 2)], 1)

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d = (self.describe(images) - self.centre[:, None, None]) / self.std[:, None, None]
        b, c, h, w = d.shape
        q = d.permute(0, 2, 3, 1).reshape(-1, c)
        dist = torch.cat([torch.cdist(part, self.memory).min(1).values for part in q.split(4096)])
        return _finish(dist.reshape(b, h, w), images.shape[-1])
