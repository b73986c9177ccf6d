"""How windows are scored and combined: the scoring recipe a bundle is trained with and carries."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import ConfigDict, Field

COMPONENTS = ("recon_mean", "recon_topk", "feature", "embedding", "level", "span", "clip", "neighbours", "frames",
              "machine")
OPTIONAL = ("span", "clip", "neighbours", "frames", "machine")
"""Components a bundle may have no statistics for (recordings shorter than a span, a bundle that
predates the clip or frames component, a bundle of one machine): their weight then counts as 0."""


@dataclass(frozen=True)
class ScoringConfig:
    """How windows are scored and combined. Saved in the bundle; may be overridden at score time."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    strengths: Annotated[
        tuple[float, ...],
        Field(min_length=1, description="Noise levels as a fraction of T (0.2 -> t = 199); several are averaged."),
    ] = field(default=(0.2, 0.4))
    steps: Annotated[
        int, Field(ge=1, description="DDIM denoising steps per strength; 1 predicts x0 in one pass.")
    ] = 1
    noise_seed: Annotated[
        int, Field(description="Seed of the fixed noise: the same audio always gets the same score.")
    ] = 0
    feature_timestep: Annotated[
        int, Field(ge=0, description="Timestep at which encoder features are read for the semantic terms.")
    ] = 0
    topk_fraction: Annotated[
        float, Field(gt=0, le=1, description="Fraction of time-frequency bins in the top-k residual pool.")
    ] = 0.01
    smoothing: Annotated[int, Field(ge=1, description="Box-filter size (bins) applied before top-k pooling.")] = 3
    weights: Annotated[
        dict[Literal["recon_mean", "recon_topk", "feature", "embedding", "level", "span", "clip", "neighbours",
                     "frames", "machine"], float],
        Field(
            description="Weight of each normalised component in the combined score (0 disables it; "
            "'feature' is off by default: on the dev set it added cost and no AUC; 'level' is half "
            "weight: microphone gain varies, raise it where the gain is fixed; 'span' weight 1 (with an 8 s span "
            "from 1 s on, and the top-3 file aggregate) was chosen leaving each set out in turn over six synthetic "
            "machines and UrbanSound8K, groups weighted equally: docs/quality.md round 5); 'frames' (the DCASE "
            "autoencoder's view, gain-tolerant) 1: +0.013 AUC and +0.016 pAUC on the real UrbanSound8K sets at the "
            "same false alarms (docs/quality.md round 9); 'clip' (the clip Gaussian's view of the spectral shape, "
            "clip_shape_only) 1: +0.026 AUC on the six fresh UrbanSound8K classes, +0.003 on the synthetic "
            "families, -0.008 on the eight dev UrbanSound8K sets, fewer false alarms (docs/quality.md round 10); "
            "'neighbours' (the span's gain-free clip features against their nearest training spans) 0: at weight 2 "
            "it raised the fixed recipe on real UrbanSound8K sets, but the bundle's fusion choice then chose worse "
            "on them than without it (docs/quality.md round 12); "
            "'machine' (fleet bundles only): how little a window sounds like its own machine (docs/quality.md round 6)."
        ),
    ] = field(default_factory=lambda: {"recon_mean": 1.0, "recon_topk": 1.0, "feature": 0.0, "embedding": 1.0,
                                       "level": 0.5, "span": 1.0, "clip": 1.0, "neighbours": 0.0, "frames": 1.0,
                                       "machine": 1.0})
    span_seconds: Annotated[
        float, Field(gt=0, description="Length of the rolling span of windows the span component averages, s.")
    ] = 8.0
    span_min_seconds: Annotated[
        float, Field(gt=0, description="A span holding less than this (the start of a stream, after a gap; at "
                                       "least 2 windows) gives no span component yet, s.")
    ] = 1.0
    span_trim: Annotated[
        float, Field(ge=0, lt=0.5, description="Share of a span's windows left out at each end of every profile "
                                               "entry before averaging (0.25: the interquartile mean): the span "
                                               "speaks for what persists, and a short sound does not hold an alert "
                                               "for a whole span (0: the plain mean of bundles before it).")
    ] = 0.25
    clip_shape_only: Annotated[
        bool, Field(description="The clip component compares a span's spectral shape (each band's mean level "
                                "against the span's own mean level) and band spreads, and leaves the overall level "
                                "to the level component: a microphone gain just past level_tolerance_db then moves "
                                "one component a little, not the clip's tight Gaussian by dozens of spreads. false: "
                                "the level is moved only up to level_tolerance_db (bundles before round 10).")
    ] = True
    neighbours_k: Annotated[
        int, Field(ge=1, description="The neighbours component's distance is the mean over this many nearest "
                                     "spans of the training recordings.")
    ] = 5
    level_tolerance_db: Annotated[
        float, Field(ge=0, description="A level this close to normal (dB, either way) adds nothing to the score: "
                                       "microphone gain differs between installations.")
    ] = 6.0
    combine: Annotated[
        Literal["mean", "max", "tail"],
        Field(description="Weighted mean of component z-scores, their weighted max, or the weighted mean of each "
                          "one's -log10 tail probability under held-out normal audio (tail: a component whose "
                          "normal values spread wide counts less than one whose normal values never go that high; with "
                          "clip 1 and frames 2 it ranks best, but its calibrated threshold alarms about three times "
                          "as often, docs/quality.md rounds 8-9)."),
    ] = "mean"
    hop_seconds: Annotated[float, Field(gt=0, description="Hop between windows when scoring a file, s.")] = 0.5
    file_aggregate: Annotated[
        Literal["max", "top3", "mean"],
        Field(description="File score from window scores: max (any window), top3 (mean of the 3 highest: one "
                          "noisy window counts less) or mean."),
    ] = "top3"
    batch_size: Annotated[
        int | None,
        Field(ge=1, description="Windows per network pass; null = 8 on a CPU (cache-sized batches are fastest "
              "there, see benchmarks/scorer.py) and 256 on a GPU."),
    ] = None

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["strengths"] = list(self.strengths)
        return d
