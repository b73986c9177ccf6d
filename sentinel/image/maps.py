"""Per-image scores and anomaly maps, and maps drawn over their images as PNG."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from sentinel.features.image_spec import ImageSpec
from sentinel.image.io import load_images
from sentinel.scoring.image_scorer import ImageScorer
from sentinel.scoring.scorer import DiffusionScorer


@dataclass
class ScoredImage:
    path: Path
    image: torch.Tensor  # [C, H, W] in [0, 1], as the bundle reads it (square: resized; native: own size)
    score: float
    map: torch.Tensor | None  # [H, W] z-like anomaly map at that size


def score_images(scorer: DiffusionScorer | ImageScorer, paths: list[Path], spec: ImageSpec, with_maps: bool = False,
                 on_error: Callable[[str], None] | None = None, chunk: int = 64) -> list[ScoredImage]:
    """Score images (unreadable ones are reported through on_error and skipped)."""
    out: list[ScoredImage] = []
    for i in range(0, len(paths), chunk):
        kept, images = load_images(paths[i : i + chunk], spec, on_error)
        if not kept:
            continue
        maps: list[torch.Tensor | None] = [None] * len(kept)
        if isinstance(scorer, ImageScorer):  # score and map from one pass
            score_t, map_list = scorer.score_maps(images)
            scores = score_t.tolist()
            if with_maps:
                maps = list(map_list)
        else:  # bundles from before the patch memory: residual maps, square only
            batch = torch.stack(images)
            scores = scorer.score(batch).scores.tolist()
            if with_maps:
                maps = list(upsample(scorer.anomaly_map(batch), spec.size))
        out += [ScoredImage(p, im, s, m) for p, im, s, m in zip(kept, images, scores, maps, strict=True)]
    return out


def upsample(maps: torch.Tensor, size: int) -> torch.Tensor:
    """[B, h, w] model-resolution maps -> [B, size, size] (a wavelet input is half size)."""
    if maps.shape[-1] == size:
        return maps
    return F.interpolate(maps[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]


def save_overlay(image: torch.Tensor, amap: torch.Tensor, path: str | Path, vmax: float | None = None) -> Path:
    """The image with its anomaly map over it (jet colours, 0 = typical, vmax = red), beside the image."""
    from matplotlib import colormaps

    top = vmax if vmax is not None else max(3.0, float(amap.max()))
    level = (amap.clamp(0, top) / top).numpy()
    heat = colormaps["jet"](level)[..., :3]
    rgb = image.expand(3, -1, -1).clamp(0, 1).permute(1, 2, 0).numpy()  # grey drawn as grey RGB
    alpha = 0.25 + 0.5 * level[..., None]  # typical regions stay readable, hot regions stand out
    blend = (1 - alpha) * rgb + alpha * heat
    side = np.concatenate([rgb, blend], axis=1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((side * 255).round().astype(np.uint8)).save(path)
    return path


def score_image_files(scorer: DiffusionScorer | ImageScorer, spec: ImageSpec, paths, with_maps: bool = False,
                      warn: Callable[[str], None] = lambda m: None) -> list[ScoredImage]:
    """Every readable image under `paths` (files, folders, globs), scored; DataError when there is none."""
    from sentinel.errors import DataError
    from sentinel.image.io import find_images

    files = find_images(paths)
    if not files:
        raise DataError(f"{', '.join(map(str, paths))}: no image files found (png, jpg, ...)")
    scored = score_images(scorer, files, spec, with_maps, on_error=lambda m: warn(f"skipped {m}"))
    if not scored:
        raise DataError(f"{', '.join(map(str, paths))}: none of the images is readable")
    return scored
