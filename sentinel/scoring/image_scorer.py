"""Scoring images by their patch maps (see patch_memory.py), with a DiffusionScorer's denoiser,
extractor, device and precision."""

from __future__ import annotations

import torch

from sentinel.scoring.patch_memory import PatchMemory
from sentinel.scoring.scorer import DiffusionScorer, ScoreResult, WindowScorer


class ImageScorer(WindowScorer):
    """`score(images)` -> image scores (z-like, from the map's top pixels); `anomaly_map(images)`
    -> [H, W] maps at each image's own size; `score_maps` both from one pass. Images are a batch
    [B, C, S, S] (square layout) or a list of [C, H, W] of any sizes (native)."""

    def __init__(self, diffusion: DiffusionScorer, memory: PatchMemory) -> None:
        self.diffusion = diffusion
        self.extractor = diffusion.extractor
        self.config = diffusion.config
        self.batch_size = diffusion.batch_size
        self.stats = diffusion.stats
        self.post = diffusion.post  # the images' threshold and verdict (image scores are already scaled)
        self.memory = memory.to(diffusion.device)

    def _to_input(self, images: torch.Tensor) -> torch.Tensor:
        d = self.diffusion
        return self.extractor(images.to(d.device, torch.float32)).contiguous(memory_format=d.memory_format)

    @torch.inference_mode()
    def raw_maps(self, images: torch.Tensor | list[torch.Tensor]) -> list[torch.Tensor]:
        """Each image's [H, W] distance map before z-scaling, at the scorer's precision."""
        d = self.diffusion
        with d.pipeline.autocast():
            return [m.float() for m in self.memory.raw_image_maps(d.model, self._to_input, list(images),
                                                                 self.batch_size)]

    def scores_from_raw(self, raw: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(image scores, z-like maps on the CPU) of raw maps."""
        maps = [self.memory.normalise(m).cpu() for m in raw]
        return self.memory.image_scores(maps), maps

    def score_maps(self, images: torch.Tensor | list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self.scores_from_raw(self.raw_maps(images))

    def score(self, images: torch.Tensor | list[torch.Tensor]) -> ScoreResult:
        scores, _ = self.score_maps(images)
        return ScoreResult(scores, {"patch": scores})

    def anomaly_map(self, images: torch.Tensor | list[torch.Tensor]) -> list[torch.Tensor]:
        return self.score_maps(images)[1]
