"""Scoring images by their patch maps (see patch_memory.py), with a DiffusionScorer's denoiser,
extractor, device and precision."""

from __future__ import annotations

import torch

from sentinel.scoring.patch_memory import PatchMemory
from sentinel.scoring.scorer import DiffusionScorer, ScoreResult, WindowScorer


class ImageScorer(WindowScorer):
    """`score(images)` -> image scores (z-like, from the map's top pixels); `anomaly_map(images)`
    -> [B, S, S] maps at the image size; `score_maps` both from one pass."""

    def __init__(self, diffusion: DiffusionScorer, memory: PatchMemory) -> None:
        self.diffusion = diffusion
        self.extractor = diffusion.extractor
        self.config = diffusion.config
        self.batch_size = diffusion.batch_size
        self.stats = diffusion.stats
        self.post = diffusion.post  # the images' threshold and verdict (image scores are already scaled)
        self.memory = memory.to(diffusion.device)

    @torch.inference_mode()
    def score_maps(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d = self.diffusion
        maps = []
        for chunk in images.split(self.batch_size):
            x0 = self.extractor(chunk.to(d.device, torch.float32)).contiguous(memory_format=d.memory_format)
            with d.pipeline.autocast():
                maps.append(self.memory.maps(d.model, x0, images.shape[-1]).float().cpu())
        out = torch.cat(maps) if maps else torch.zeros(0, images.shape[-1], images.shape[-1])
        return self.memory.image_scores(out), out

    def score(self, images: torch.Tensor) -> ScoreResult:
        scores, _ = self.score_maps(images)
        return ScoreResult(scores, {"patch": scores})

    def anomaly_map(self, images: torch.Tensor) -> torch.Tensor:
        return self.score_maps(images)[1]
