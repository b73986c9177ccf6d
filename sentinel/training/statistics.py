"""Fitting a scorer's statistics on normal audio, the last stage of training: the normal
statistics its raw components are measured against, and the post-processor's z-scaling.

Bin and embedding statistics come from windows the network trained on; the component scaling
from held-out windows it never saw, so that normal scores are honest.
"""

from __future__ import annotations

import torch
from sklearn.covariance import LedoitWolf

from sentinel.scoring.postprocess import MIN_STD, PostProcessor
from sentinel.scoring.scorer import DiffusionScorer
from sentinel.scoring.stats import NormalStats, mahalanobis
from sentinel.windows import sliding_windows

MEMORY = 2048
"""Most training spans the neighbours component keeps (2 MB at 128 mels; a distance to each per window)."""


def _gaussian(x: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, precision) of rows x, Ledoit-Wolf shrunk (few rows for many dimensions)."""
    cov = LedoitWolf().fit(x.double().cpu().numpy())
    return (torch.as_tensor(cov.location_, dtype=torch.float32, device=device),
            torch.as_tensor(cov.precision_, dtype=torch.float32, device=device))


def fit_statistics(scorer: DiffusionScorer, fit_windows: torch.Tensor, holdout_windows: torch.Tensor,
                   span_recordings: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None,
                   ) -> tuple[NormalStats, PostProcessor]:
    """Fit and install (scorer.stats, scorer.post) on normal windows. `span_recordings` (training,
    held-out) waveforms fit the span component the same way: its Gaussian on spans of the first,
    its scaling on spans of the second. The post-processor keeps the scorer's calibration (None
    for a fresh fit)."""
    raw = scorer.raw(fit_windows)  # residual and embedding only: the feature term needs none
    embed_mean, embed_precision = _gaussian(raw.embedding, scorer.device)
    stats = NormalStats(residual_mean=raw.residual.mean(0), residual_std=raw.residual.std(0).clamp_min(1e-6),
                        embed_mean=embed_mean, embed_precision=embed_precision)
    post = PostProcessor(scorer.config, calibration=scorer.post.calibration)
    # Statistics for every component, so that any weights may be chosen at scoring time.
    comps = scorer.components(scorer.raw(holdout_windows, every_component=True), stats)
    for name, values in comps.items():
        post.component_mean[name] = float(values.mean())
        post.component_std[name] = max(float(values.std()), MIN_STD.get(name, 1e-6))
        post.fit_tail(name, values)
    if span_recordings is not None:
        _fit_span(scorer, stats, post, *span_recordings)
    scorer.stats, scorer.post = stats, post
    return stats, post


def _span_means(scorer: DiffusionScorer, waves: list[torch.Tensor], limit: int = 4096
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(span means, windows each holds, the recording each came from) at every position with
    enough history, over recordings scored in order."""
    spec = scorer.extractor.spec
    hop = max(1, round(scorer.config.hop_seconds * spec.sample_rate))
    means: list[torch.Tensor] = []
    counts: list[int] = []
    recordings: list[int] = []
    for i, wave in enumerate(waves):
        if len(means) >= limit or wave.numel() < spec.window_samples:
            continue
        profiles = scorer.stream_profile(scorer.raw(sliding_windows(wave, spec.window_samples, hop).samples))
        st = scorer.new_span_state()
        m, _, k = scorer.span_distances(profiles, [st] * len(profiles))
        means += m
        counts += k
        recordings += [i] * len(m)
    return ((torch.stack(means) if means else torch.zeros(0)), torch.tensor(counts, dtype=torch.long),
            torch.tensor(recordings, dtype=torch.long))


def _fit_span(scorer: DiffusionScorer, stats: NormalStats, post: PostProcessor, train: list[torch.Tensor],
              holdout: list[torch.Tensor]) -> None:
    """The span component's Gaussian and the clip component's, each on spans of the training
    recordings, and their scaling on spans of the held-out ones."""
    fit_means, fit_counts, fit_recordings = _span_means(scorer, train)
    if fit_means.shape[0] < 2:
        return  # recordings shorter than a span: no span component (its weight counts as 0)
    held, counts, _ = _span_means(scorer, holdout)
    if held.shape[0] < 2:
        held, counts = fit_means, fit_counts
    span_dims = fit_means.shape[1] - scorer.clip_dims
    stats.span_mean, stats.span_precision = _gaussian(fit_means[:, :span_dims], scorer.device)
    dist = mahalanobis(held[:, :span_dims].to(scorer.device) - stats.span_mean, stats.span_precision).cpu()
    _fit_stream_scale(scorer, post, "span", dist, counts)
    if scorer.clip_dims:
        stats.clip_profile_mean = fit_means[:, span_dims:].mean(0).to(scorer.device)
        fit_clip = scorer.clip_features(fit_means[:, span_dims:].to(scorer.device), stats)
        stats.clip_mean, stats.clip_precision = _gaussian(fit_clip, scorer.device)
        held_clip = scorer.clip_features(held[:, span_dims:].to(scorer.device), stats)
        _fit_stream_scale(scorer, post, "clip", mahalanobis(held_clip - stats.clip_mean, stats.clip_precision).cpu(),
                          counts)
        _fit_neighbours(scorer, stats, post, fit_clip, fit_recordings, held_clip, counts)


def _fit_neighbours(scorer: DiffusionScorer, stats: NormalStats, post: PostProcessor, feats: torch.Tensor,
                    recordings: torch.Tensor, held: torch.Tensor, counts: torch.Tensor) -> None:
    """The neighbours component's memory (the clip features of every span of the training
    recordings, whole recordings drawn evenly when there are more than MEMORY spans, so that a
    training recording scored again finds all of its own spans and leaves them out) and its scaling
    on the held-out recordings' spans (`held`, their clip features), which the memory does not hold."""
    if feats.shape[0] > MEMORY:
        ids = recordings.unique()
        per = max(1, int(MEMORY / (feats.shape[0] / len(ids))))  # recordings that fit, at their mean length
        keep = torch.isin(recordings, ids[torch.linspace(0, len(ids) - 1, min(per, len(ids))).round().long()])
        feats, recordings = feats[keep.to(feats.device)][:MEMORY], recordings[keep][:MEMORY]
    stats.neighbour_centre = feats.mean(0)
    stats.neighbour_scale = feats.std(0).clamp_min(1e-3)
    stats.neighbour_memory = (feats - stats.neighbour_centre) / stats.neighbour_scale
    stats.neighbour_recordings = recordings
    _fit_stream_scale(scorer, post, "neighbours", scorer.neighbour_distance(held, stats).cpu(), counts)


def _fit_stream_scale(scorer: DiffusionScorer, post: PostProcessor, name: str, dist: torch.Tensor,
                      counts: torch.Tensor) -> None:
    """A stream component's z-scaling, per count of windows held, and its held-out tail."""
    post.component_mean[name] = float(dist.mean())
    post.component_std[name] = max(float(dist.std()), 1e-6)
    # Per count of windows held: a count the held-out recordings have too few of (longer than
    # they are, or rare) takes the scale of the nearest count below it that has enough, and
    # counts below the first that has enough take that one's; with none, one scale for all.
    scales: list[tuple[float, float] | None] = []
    for k in range(1, scorer.span_windows + 1):
        v = dist[counts == k]
        scales.append((float(v.mean()), max(float(v.std()), 1e-6)) if len(v) >= 3 else None)
    known = [sc for sc in scales if sc is not None]
    last = known[0] if known else (post.component_mean[name], post.component_std[name])
    filled = []
    for sc in scales:
        last = sc or last
        filled.append(last)
    setattr(post, f"{name}_count_mean", [m for m, _ in filled])
    setattr(post, f"{name}_count_std", [sd for _, sd in filled])
    post.fit_tail(name, post.span_on_full_scale(dist, counts, name))
