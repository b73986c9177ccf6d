"""What a window's raw components are measured against: statistics of normal audio that travel
in the bundle's safetensors (the z-scaling of components lives in the post-processor)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

SAME_SPAN = 1e-3
"""A memory row this near a span (in normal-spread units, over every entry) is that very span:
the features are computed from the same samples the same way, so only rounding parts them."""


def nearest_distance(x: torch.Tensor, memory: torch.Tensor, k: int, recordings: torch.Tensor | None = None
                     ) -> torch.Tensor:
    """[B] mean Euclidean distance of rows x to their k nearest rows of memory. With `recordings`
    ([M], which recording each memory row came from), a row that is itself in the memory (a
    training recording scored again, e.g. calibrated on) is measured against the other recordings
    only: a recording is not its own neighbour, or its distances would be ~0 and the threshold
    set on them too low."""
    d = torch.cdist(x, memory.to(x.device, x.dtype))
    k = min(k, memory.shape[0])
    plain = d.topk(k, dim=1, largest=False).values.mean(1)
    if recordings is None:
        return plain
    nearest, at = d.min(1)
    own = nearest < SAME_SPAN * memory.shape[1] ** 0.5
    if not bool(own.any()):
        return plain
    recordings = recordings.to(x.device)
    mask = own[:, None] & (recordings[None, :] == recordings[at][:, None])
    others = d.masked_fill(mask, float("inf")).topk(k, dim=1, largest=False).values.mean(1)
    return torch.where(torch.isfinite(others), others, plain)  # a memory of one recording: no others


def mahalanobis(d: torch.Tensor, precision: torch.Tensor) -> torch.Tensor:
    """[B] Mahalanobis distance of rows d (already centred) under a precision matrix."""
    return ((d @ precision) * d).sum(1).clamp_min(0).sqrt()


@dataclass
class NormalStats:
    residual_mean: torch.Tensor  # [H, W]: per-bin reconstruction residual of normal windows
    residual_std: torch.Tensor  # [H, W]
    embed_mean: torch.Tensor  # [D]: pooled encoder features of normal windows
    embed_precision: torch.Tensor  # [D, D]
    span_mean: torch.Tensor | None = None  # [P]: span means of normal recordings; None: no span component
    span_precision: torch.Tensor | None = None  # [P, P]
    clip_mean: torch.Tensor | None = None  # [2 mels]: clip features of normal spans; None: no clip component
    clip_precision: torch.Tensor | None = None  # [2 mels, 2 mels]
    clip_profile_mean: torch.Tensor | None = None
    """[2 mels]: normal windows' per-band mean log-mel and mean square (what a stream's history holds
    for the clip component; its level is the reference the gain tolerance is measured from)."""
    neighbour_memory: torch.Tensor | None = None
    """[M, 2 mels]: clip features (level moved up to the tolerance) of spans of the training recordings,
    each entry divided by neighbour_scale after neighbour_centre is taken off; None: no neighbours
    component (a bundle before it, recordings shorter than a span)."""
    neighbour_centre: torch.Tensor | None = None  # [2 mels]
    neighbour_scale: torch.Tensor | None = None  # [2 mels]
    neighbour_recordings: torch.Tensor | None = None
    """[M] which training recording each memory row came from (int); None: none known."""

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {
            "stats.residual_mean": self.residual_mean,
            "stats.residual_std": self.residual_std,
            "stats.embed_mean": self.embed_mean,
            "stats.embed_precision": self.embed_precision,
        }
        if self.span_mean is not None and self.span_precision is not None:
            out |= {"stats.span_mean": self.span_mean, "stats.span_precision": self.span_precision}
        if self.clip_mean is not None and self.clip_precision is not None and self.clip_profile_mean is not None:
            out |= {"stats.clip_mean": self.clip_mean, "stats.clip_precision": self.clip_precision,
                    "stats.clip_profile_mean": self.clip_profile_mean}
        if self.neighbour_memory is not None and self.neighbour_centre is not None and self.neighbour_scale is not None:
            out |= {"stats.neighbour_memory": self.neighbour_memory, "stats.neighbour_centre": self.neighbour_centre,
                    "stats.neighbour_scale": self.neighbour_scale}
            if self.neighbour_recordings is not None:
                out["stats.neighbour_recordings"] = self.neighbour_recordings
        return out

    def to(self, device: torch.device) -> NormalStats:
        return dataclasses.replace(
            self, **{k.split(".", 1)[1]: v.to(device) for k, v in self.tensors().items()}
        )

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> NormalStats:
        return cls(
            residual_mean=tensors["stats.residual_mean"],
            residual_std=tensors["stats.residual_std"],
            embed_mean=tensors["stats.embed_mean"],
            embed_precision=tensors["stats.embed_precision"],
            span_mean=tensors.get("stats.span_mean"),
            span_precision=tensors.get("stats.span_precision"),
            clip_mean=tensors.get("stats.clip_mean"),
            clip_precision=tensors.get("stats.clip_precision"),
            clip_profile_mean=tensors.get("stats.clip_profile_mean"),
            neighbour_memory=tensors.get("stats.neighbour_memory"),
            neighbour_centre=tensors.get("stats.neighbour_centre"),
            neighbour_scale=tensors.get("stats.neighbour_scale"),
            neighbour_recordings=tensors.get("stats.neighbour_recordings"),
        )
