"""Anomaly maps for images: how far each patch is from its nearest normal patch.

A reconstruction residual measures how hard a patch is to rebuild, not how unusual it is: busy
normal texture leaves large residuals, and a defect that *removes* texture (a blur, a flat stain,
a hole) is easy to rebuild, so it ranks below normal pixels (benchmarks/textures.py, round 2 in
docs/quality.md). Here each location of an image is described by
- the denoiser's encoder features at its `feature_scales` finest scales (what the diffusion model learnt to see
  in normal images), averaged over a 3 x 3 neighbourhood, and
- the log energy of every model-input channel (wavelet sub-bands) in 3, 7 and 15 px windows
  (how much texture there is at each scale: what a blur or a flat stain takes away),
each channel standardised on normal images and each block scaled to equal weight (the features at
`feature_weight`). The map is the distance to the nearest of a memory of such descriptors from
normal training images (PatchCore's idea, with the denoiser in place of a pretrained backbone),
smoothed, and z-scaled on held-out normal images: 0 is typical, 3 is rare. The image score is
the mean of the map's top `top_fraction` of pixels.

Images of any size work (the native layout): each is padded to the denoiser's multiple, described
on a grid of one location per `stride` px, and its map cropped back to the image. Real inspection
images have edges (a part's sides, the frame) that are the most varied part of every normal image;
with `edge_px` the z-scaling is fitted per distance from the image's border, so an edge is compared
with normal edges and does not outrank a defect in the middle (benchmarks/magnetic_tile.py).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
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

    grid: Annotated[
        int, Field(ge=4, description="Map locations per side (before upsampling to the image), when stride is 0.")
    ] = 32
    stride: Annotated[
        int, Field(ge=0, description="One map location per this many image px, whatever the image's size "
                   "(0: a fixed `grid` per side, for the square layout).")
    ] = 0
    feature_scales: Annotated[
        int, Field(ge=1, le=4, description="Denoiser encoder scales described, finest first (3 and 4 see "
                   "context a quarter of the input across, for defects larger than a patch).")
    ] = 2
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
    edge_px: Annotated[
        int, Field(ge=0, description="Within this many px of the image's border the map is z-scaled by normal "
                   "maps at the same distance from it (0: one scaling for the whole map).")
    ] = 0

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["energy_windows"] = list(self.energy_windows)
        return d


# Descriptors gathered for the memory's statistics; beyond this, each image contributes a seeded
# random share of its locations (native images hold thousands each).
MAX_FIT_LOCATIONS = 1 << 19


def _gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """[B, H, W] -> the same, separable gaussian with reflected borders."""
    if sigma <= 0:
        return maps
    r = max(1, math.ceil(3 * sigma))
    x = torch.arange(-r, r + 1, dtype=maps.dtype, device=maps.device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    m = maps[:, None]
    mode = "reflect" if min(maps.shape[-2:]) > r else "replicate"
    m = F.conv2d(F.pad(m, (r, r, 0, 0), mode=mode), k.view(1, 1, 1, -1))
    m = F.conv2d(F.pad(m, (0, 0, r, r), mode=mode), k.view(1, 1, -1, 1))
    return m[:, 0]


def _to_grid(f: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    if tuple(f.shape[-2:]) == grid:
        return f
    if f.shape[-2] >= grid[0] and f.shape[-1] >= grid[1]:
        return F.adaptive_avg_pool2d(f, grid)
    return F.interpolate(f, size=grid, mode="bilinear", align_corners=False)


def edge_distance(shape: tuple[int, int], cap: int,
                  device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """([H, 1], [1, W]) long: each row's distance in px from the top or bottom border and each
    column's from the left or right one, capped at `cap`."""
    h, w = shape
    ys = torch.arange(h, device=device)
    xs = torch.arange(w, device=device)
    return torch.minimum(ys, h - 1 - ys)[:, None].clamp_max(cap), torch.minimum(xs, w - 1 - xs)[None, :].clamp_max(cap)


def same_shape_batches(images: list[torch.Tensor], batch: int) -> Iterator[tuple[list[int], torch.Tensor]]:
    """(indices, [b, C, H, W]) of images that share a shape, at most `batch` at a time, in order of
    first appearance: a square set is one stream of full batches, native images mostly go alone."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, im in enumerate(images):
        groups.setdefault(tuple(im.shape), []).append(i)
    for idx in groups.values():
        for k in range(0, len(idx), batch):
            part = idx[k : k + batch]
            yield part, torch.stack([images[i] for i in part])


def pad_to_multiple(images: torch.Tensor, multiple: int) -> torch.Tensor:
    """[B, C, H, W] padded at the bottom and right so both sides are multiples of `multiple`
    (mirrored where the image is large enough, else its last row/column repeated)."""
    h, w = images.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph == 0 and pw == 0:
        return images
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(images, (0, pw, 0, ph), mode=mode)


class PatchMemory:
    """The normal patch memory and the statistics that turn distances into z-like maps."""

    def __init__(self, config: PatchMapConfig, memory: torch.Tensor, centre: torch.Tensor, scale: torch.Tensor,
                 input_stride: int = 1, map_mean: float = 0.0, map_std: float = 1.0,
                 edge_mean: torch.Tensor | None = None, edge_std: torch.Tensor | None = None) -> None:
        self.config = config
        self.memory = memory  # [N, D] descriptors, already centred and scaled
        self.centre = centre  # [D]
        self.scale = scale  # [D]: block weight / channel std
        self.input_stride = input_stride
        """Image pixels per model-input pixel (2 for the wavelet input)."""
        self.map_mean, self.map_std = map_mean, map_std
        self.edge_mean, self.edge_std = edge_mean, edge_std
        """[edge_px + 1, edge_px + 1] per (distance from top/bottom, from left/right), each capped at
        edge_px (None: the whole map uses map_mean/std). Rows and columns apart: a part's sides and
        its top are different places, and one distance to the nearest border would mix them."""

    # -- descriptors ----------------------------------------------------------------------------
    @staticmethod
    def grid_shape(config: PatchMapConfig, x0: torch.Tensor, input_stride: int) -> tuple[int, int]:
        h, w = x0.shape[-2:]
        if config.stride == 0:
            g = min(config.grid, w)
            return g, g
        cell = max(1, config.stride // input_stride)
        return max(1, h // cell), max(1, w // cell)

    @staticmethod
    def raw_descriptors(model: UNet, x0: torch.Tensor, config: PatchMapConfig,
                        input_stride: int = 1) -> tuple[torch.Tensor, int]:
        """[B, D, gh, gw] un-normalised descriptors of model inputs x0, and how many of the D
        channels are denoiser features (the rest are energies)."""
        grid = PatchMemory.grid_shape(config, x0, input_stride)
        feats = model.encode(x0, 0)[: config.feature_scales]
        parts = [_to_grid(F.avg_pool2d(f.float(), 3, 1, 1, count_include_pad=False), grid) for f in feats]
        n_feat = sum(p.shape[1] for p in parts)
        sq = x0.float().pow(2)
        for k in config.energy_windows:
            energy = F.avg_pool2d(sq, k, 1, k // 2, count_include_pad=False)
            parts.append(_to_grid(energy.clamp_min(1e-6).log(), grid))
        return torch.cat(parts, 1), n_feat

    def describe(self, model: UNet, x0: torch.Tensor) -> torch.Tensor:
        """[B, D, gh, gw] descriptors in memory units."""
        raw, _ = self.raw_descriptors(model, x0, self.config, self.input_stride)
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
        """[B, gh, gw] smoothed distances (before z-scaling)."""
        dist = self.distances(self.describe(model, x0))
        sigma = self.config.smoothing_px * dist.shape[-1] / (x0.shape[-1] * self.input_stride)
        return _gaussian_blur(dist, sigma)

    @torch.inference_mode()
    def raw_image_maps(self, model: UNet, to_input: Callable[[torch.Tensor], torch.Tensor],
                       images: list[torch.Tensor], batch: int) -> list[torch.Tensor]:
        """Each image [C, H, W] -> its [H, W] smoothed distance map (before z-scaling), on the
        device `to_input` puts the model input on."""
        out: list[torch.Tensor | None] = [None] * len(images)
        multiple = model.config.downsampling * self.input_stride
        for idx, stack in same_shape_batches(images, batch):
            padded = pad_to_multiple(stack, multiple)
            m = self.raw_map(model, to_input(padded)).float()
            m = F.interpolate(m[:, None], size=padded.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
            h, w = stack.shape[-2:]
            for i, one in zip(idx, m[:, :h, :w], strict=True):
                out[i] = one
        return out  # type: ignore[return-value]

    def normalise(self, raw: torch.Tensor) -> torch.Tensor:
        """An [H, W] raw map -> z-like (0 typical of normal images, 3 rare), per distance from the
        border within edge_px."""
        if self.edge_mean is None or self.edge_std is None:
            return (raw - self.map_mean) / self.map_std
        dy, dx = edge_distance(tuple(raw.shape), self.edge_mean.shape[0] - 1, raw.device)
        mean = self.edge_mean.to(raw.device, raw.dtype)[dy, dx]
        std = self.edge_std.to(raw.device, raw.dtype)[dy, dx]
        return (raw - mean) / std

    def image_score(self, zmap: torch.Tensor) -> torch.Tensor:
        flat = zmap.flatten()
        k = max(1, round(self.config.top_fraction * flat.numel()))
        return flat.topk(k).values.mean()

    def image_scores(self, maps: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        return torch.stack([self.image_score(m) for m in maps]) if len(maps) else torch.zeros(0)

    # -- fitting --------------------------------------------------------------------------------
    @classmethod
    def fit(cls, model: UNet, to_input: Callable[[torch.Tensor], torch.Tensor], fit_images: list[torch.Tensor],
            config: PatchMapConfig, input_stride: int = 1, seed: int = 0, batch: int = 16) -> PatchMemory:
        """Memory from normal images `fit_images` ([C, H, W] each, any sizes). Its z-scaling is
        still the identity: `fit_scaling` sets it from raw maps of held-out normal images, which
        neither the memory nor (if the caller held them out) the network has seen; the caller
        makes those maps at its scoring precision and can score the same maps for a threshold."""
        gen = torch.Generator().manual_seed(seed)
        multiple = model.config.downsampling * input_stride
        with torch.inference_mode():
            per_image, n_feat = [], 0
            for _, stack in same_shape_batches(fit_images, batch):
                x0 = to_input(pad_to_multiple(stack, multiple))
                raw, n_feat = cls.raw_descriptors(model, x0, config, input_stride)
                # keep the grid cells that cover the image, not its padding
                gh = max(1, math.ceil(stack.shape[-2] * raw.shape[-2] / (x0.shape[-2] * input_stride)))
                gw = max(1, math.ceil(stack.shape[-1] * raw.shape[-1] / (x0.shape[-1] * input_stride)))
                per_image += list(raw[:, :, :gh, :gw].permute(0, 2, 3, 1).flatten(1, 2))
            total = sum(len(p) for p in per_image)
            if total > MAX_FIT_LOCATIONS:
                share = max(1, MAX_FIT_LOCATIONS // len(per_image))
                per_image = [p[torch.randperm(len(p), generator=gen)[:share].to(p.device)] for p in per_image]
            flat = torch.cat(per_image)
            centre, std = flat.mean(0), flat.std(0).clamp_min(1e-4)
            n_energy = flat.shape[1] - n_feat
            weight = torch.cat([torch.full((n_feat,), config.feature_weight / math.sqrt(max(n_feat, 1))),
                                torch.full((n_energy,), 1.0 / math.sqrt(n_energy))]).to(flat)
            scale = weight / std
            keep = torch.randperm(flat.shape[0], generator=gen)[: config.memory_size].to(flat.device)
            memory = ((flat[keep] - centre) * scale).contiguous()
        return cls(config, memory, centre, scale, input_stride)

    def fit_scaling(self, held: list[torch.Tensor]) -> None:
        """z-scaling from held-out normal raw maps: over all pixels, and per (distance from
        top/bottom, from left/right) within edge_px (each place's own mean and spread)."""
        values = torch.cat([m.flatten() for m in held])
        self.map_mean, self.map_std = float(values.mean()), max(float(values.std()), 1e-6)
        self.edge_mean = self.edge_std = None
        n = self.config.edge_px
        if n == 0:
            return
        bins = []
        for m in held:
            dy, dx = edge_distance(tuple(m.shape), n, m.device)
            bins.append((dy * (n + 1) + dx).flatten())
        b = torch.cat(bins)
        count = torch.bincount(b, minlength=(n + 1) ** 2).double()
        total = torch.bincount(b, weights=values.double(), minlength=(n + 1) ** 2)
        total_sq = torch.bincount(b, weights=values.double().pow(2), minlength=(n + 1) ** 2)
        mean = total / count.clamp_min(1)
        std = ((total_sq / count.clamp_min(1) - mean.pow(2)).clamp_min(0) * count / (count - 1).clamp_min(1)).sqrt()
        few = count < 2  # a place no held-out image reaches (all smaller than 2 * edge_px): the overall scaling
        mean[few], std[few] = self.map_mean, self.map_std
        mean[-1], std[-1] = self.map_mean, self.map_std  # the interior: as without edge_px
        self.edge_mean = mean.reshape(n + 1, n + 1).float()
        self.edge_std = std.clamp_min(1e-6).reshape(n + 1, n + 1).float()

    # -- bundle I/O -----------------------------------------------------------------------------
    def tensors(self) -> dict[str, torch.Tensor]:
        return {"patch.memory": self.memory, "patch.centre": self.centre, "patch.scale": self.scale}

    def meta(self) -> dict:
        return {"config": self.config.to_dict(), "map_mean": self.map_mean, "map_std": self.map_std,
                "edge_mean": None if self.edge_mean is None else self.edge_mean.tolist(),
                "edge_std": None if self.edge_std is None else self.edge_std.tolist()}

    @classmethod
    def from_parts(cls, tensors: dict[str, torch.Tensor], meta: dict, config: PatchMapConfig,
                   input_stride: int) -> PatchMemory:
        memory, centre, scale = tensors["patch.memory"], tensors["patch.centre"], tensors["patch.scale"]
        if memory.dim() != 2 or centre.shape != scale.shape or centre.shape[0] != memory.shape[1]:
            raise ValueError(f"patch memory {tuple(memory.shape)} does not fit its centre {tuple(centre.shape)}")
        tables = {k: None if meta.get(k) is None else torch.tensor(meta[k], dtype=torch.float32)
                  for k in ("edge_mean", "edge_std")}
        n = config.edge_px + 1
        want = None if config.edge_px == 0 else (n, n)
        for name, table in tables.items():
            got = None if table is None else tuple(table.shape)
            if got != want:
                raise ValueError(f"image_map {name} has shape {got}, edge_px {config.edge_px} implies {want}")
        edge_mean, edge_std = tables["edge_mean"], tables["edge_std"]
        return cls(config, memory, centre, scale, input_stride, float(meta["map_mean"]), float(meta["map_std"]),
                   edge_mean, edge_std)

    def to(self, device: torch.device) -> PatchMemory:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return PatchMemory(self.config, self.memory.to(device), self.centre.to(device), self.scale.to(device),
                           self.input_stride, self.map_mean, self.map_std, move(self.edge_mean), move(self.edge_std))
