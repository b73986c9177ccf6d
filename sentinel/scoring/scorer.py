"""The diffusion anomaly scorer: noise part-way, denoise back, measure how far it lands.

Per window, four raw components, each turned into a z-score with statistics of normal audio
and then combined:
- recon_mean: mean of the per-bin z-scored squared reconstruction residual (stationary faults);
- recon_topk: mean of the top-k smoothed residual bins (short local events a mean would hide);
- feature:    1 - cosine between the denoiser's multi-scale encoder features of the input and
              of its reconstruction (the semantic discrepancy);
- embedding:  Mahalanobis distance of the input's pooled encoder features to those of normal
              windows (level and ratio faults that the network reconstructs perfectly well);
- level:      the window's level (mean log-mel, dB), scored as |z| against normal windows: the
              model input has its level removed (FeatureSpec.remove_level), so a machine that
              only gets louder or quieter is seen here; a deviation within `level_tolerance_db`
              counts as none (microphone gain differs between installations);
- span:       the longer view: Mahalanobis distance of a rolling mean, over the last `span_seconds`
              of windows of the same stream, of each window's level-free log-mel profile (mean and
              spread per bin) and the denoiser's reconstruction residual per frequency row, to such
              means of normal audio. Stationary faults (a harmonic a few dB up, a steady hiss) hide
              in any one window's noise and show in the average. It needs the stream's history
              (`SpanState`): a recording carries one through its windows, the daemon one per source.
              A mean of few windows is noisier than a full span's, so the distance is scaled by
              the spread normal audio has at the same count of windows (fitted on held-out
              recordings): a young span counts as evidence from its second window on, without
              false alarms from its noise.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import ConfigDict, Field
from sklearn.covariance import LedoitWolf

from sentinel.diffusion.schedulers import DDIMScheduler, NoiseSchedule, SchedulerConfig
from sentinel.diffusion.unet import UNet
from sentinel.features.extractor import FeatureExtractor
from sentinel.windows import sliding_windows

COMPONENTS = ("recon_mean", "recon_topk", "feature", "embedding", "level", "span")


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
        dict[Literal["recon_mean", "recon_topk", "feature", "embedding", "level", "span"], float],
        Field(
            description="Weight of each normalised component in the combined score (0 disables it; "
            "'feature' is off by default: on the dev set it added cost and no AUC; 'level' is half "
            "weight: microphone gain varies, raise it where the gain is fixed; 'span' weight 1 (with an 8 s span "
            "from 1 s on, and the top-3 file aggregate) was chosen leaving each set out in turn over six synthetic "
            "machines and UrbanSound8K, groups weighted equally: docs/quality.md round 5)."
        ),
    ] = field(default_factory=lambda: {"recon_mean": 1.0, "recon_topk": 1.0, "feature": 0.0, "embedding": 1.0,
                                       "level": 0.5, "span": 1.0})
    span_seconds: Annotated[
        float, Field(gt=0, description="Length of the rolling span of windows the span component averages, s.")
    ] = 8.0
    span_min_seconds: Annotated[
        float, Field(gt=0, description="A span holding less than this (the start of a stream, after a gap; at "
                                       "least 2 windows) gives no span component yet, s.")
    ] = 1.0
    level_tolerance_db: Annotated[
        float, Field(ge=0, description="A level this close to normal (dB, either way) adds nothing to the score: "
                                       "microphone gain differs between installations.")
    ] = 6.0
    combine: Annotated[
        Literal["mean", "max"], Field(description="Weighted mean of component z-scores, or their weighted max.")
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


@dataclass
class ScoreResult:
    scores: torch.Tensor
    """[B] combined score per window (a z-like number: about 0 for typical normal audio)."""
    components: dict[str, torch.Tensor]
    """[B] raw (un-normalised) value of each component."""


@dataclass
class NormalStats:
    """Statistics of normal audio that turn raw components into comparable z-scores."""

    residual_mean: torch.Tensor  # [H, W]
    residual_std: torch.Tensor  # [H, W]
    embed_mean: torch.Tensor  # [D]
    embed_precision: torch.Tensor  # [D, D]
    component_mean: dict[str, float]
    component_std: dict[str, float]
    span_mean: torch.Tensor | None = None  # [P]: bundles from before the span component have none
    span_precision: torch.Tensor | None = None  # [P, P]
    span_count_mean: list[float] | None = None
    """Mean span distance of held-out normal audio by windows held (index = count - 1); None: one scale."""
    span_count_std: list[float] | None = None

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {
            "stats.residual_mean": self.residual_mean,
            "stats.residual_std": self.residual_std,
            "stats.embed_mean": self.embed_mean,
            "stats.embed_precision": self.embed_precision,
        }
        if self.span_mean is not None and self.span_precision is not None:
            out |= {"stats.span_mean": self.span_mean, "stats.span_precision": self.span_precision}
        return out

    def json(self) -> dict:
        out: dict = {"component_mean": self.component_mean, "component_std": self.component_std}
        if self.span_count_mean is not None:
            out |= {"span_count_mean": self.span_count_mean, "span_count_std": self.span_count_std}
        return out

    def to(self, device: torch.device) -> NormalStats:
        return dataclasses.replace(
            self, **{k.split(".", 1)[1]: v.to(device) for k, v in self.tensors().items()}
        )

    def span_on_full_scale(self, dist: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """Span distances of means over `counts` windows, moved onto the scale of a full span's:
        (d - mean_k) / std_k * std + mean, so that the component's one z-scaling fits every count."""
        if self.span_count_mean is None or self.span_count_std is None or "span" not in self.component_mean:
            return dist
        idx = (counts.long() - 1).clamp(0, len(self.span_count_mean) - 1).cpu()
        m = torch.tensor(self.span_count_mean, dtype=dist.dtype)[idx].to(dist.device)
        sd = torch.tensor(self.span_count_std, dtype=dist.dtype)[idx].to(dist.device)
        return (dist - m) / sd * self.component_std["span"] + self.component_mean["span"]

    @classmethod
    def from_parts(cls, tensors: dict[str, torch.Tensor], meta: dict) -> NormalStats:
        return cls(
            residual_mean=tensors["stats.residual_mean"],
            residual_std=tensors["stats.residual_std"],
            embed_mean=tensors["stats.embed_mean"],
            embed_precision=tensors["stats.embed_precision"],
            component_mean=dict(meta["component_mean"]),
            component_std=dict(meta["component_std"]),
            span_mean=tensors.get("stats.span_mean"),
            span_precision=tensors.get("stats.span_precision"),
            span_count_mean=meta.get("span_count_mean"),
            span_count_std=meta.get("span_count_std"),
        )


class SpanState:
    """The rolling history one stream (a recording, a live source) carries for the span component:
    the last `n` windows' profiles. Windows must be pushed in stream order; `reset` after a gap."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._items: deque[torch.Tensor] = deque(maxlen=n)

    def push(self, profile: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Add one window's profile; (mean over the span so far, how many windows it holds)."""
        self._items.append(profile)
        return torch.stack(tuple(self._items)).mean(0), len(self._items)

    def reset(self) -> None:
        self._items.clear()


@dataclass
class RecordingScores:
    starts_s: list[float]
    """Start of each window, seconds from the beginning of the recording."""
    window_s: float
    scores: torch.Tensor
    """[n] combined score of each window."""
    components: dict[str, torch.Tensor]


@dataclass
class _Raw:
    residual: torch.Tensor  # [B, H, W]
    feature: torch.Tensor  # [B]
    embedding: torch.Tensor  # [B, D]
    level: torch.Tensor  # [B]
    profile: torch.Tensor  # [B, P]: what the span component averages over time


def _pool_features(feats: list[torch.Tensor]) -> torch.Tensor:
    """Mean and std over time-frequency of every channel at every scale -> [B, D]."""
    parts = []
    for f in feats:
        flat = f.flatten(2)
        parts += [flat.mean(-1), flat.std(-1)]
    return torch.cat(parts, dim=1)


def _mahalanobis(d: torch.Tensor, precision: torch.Tensor) -> torch.Tensor:
    """[B] Mahalanobis distance of rows d (already centred) under a precision matrix."""
    return ((d @ precision) * d).sum(1).clamp_min(0).sqrt()


def file_score(scores: torch.Tensor, aggregate: str) -> float:
    """One number for a recording from its window scores (ScoringConfig.file_aggregate)."""
    if scores.numel() == 0:
        return float("nan")
    if aggregate == "max":
        return float(scores.max())
    if aggregate == "top3":
        return float(scores.topk(min(3, scores.numel())).values.mean())
    return float(scores.mean())


class WindowScorer:
    """What the CLI and the daemon need of a scorer: `score(windows)`, `extractor.spec` (the
    window length), `config` (hop, file aggregate) and `score_recording`."""

    extractor: torch.nn.Module
    config: ScoringConfig
    batch_size: int

    def score(self, windows: torch.Tensor) -> ScoreResult:
        raise NotImplementedError

    def new_span_state(self) -> SpanState | None:
        """History for one stream, for scorers with a component over time (None: none)."""
        return None

    def score_recording(self, wave: torch.Tensor) -> RecordingScores:
        """Score a whole recording [N] in overlapping windows (hop from the config)."""
        spec = self.extractor.spec
        hop = max(1, round(self.config.hop_seconds * spec.sample_rate))
        w = sliding_windows(wave, spec.window_samples, hop)
        state = self.new_span_state()
        res = self.score(w.samples) if state is None else self.score(w.samples, [state] * len(w.starts))
        return RecordingScores([s / spec.sample_rate for s in w.starts], spec.window_seconds, res.scores,
                               res.components)


class DiffusionScorer(WindowScorer):
    """Scores batches of waveform windows. Thread-compatible: it keeps no per-call state."""

    def __init__(
        self,
        model: UNet,
        scheduler_config: SchedulerConfig,
        extractor: FeatureExtractor,
        config: ScoringConfig,
        stats: NormalStats | None = None,
        device: torch.device | str = "cpu",
        channels_last: bool = True,
        precision: Literal["auto", "float32", "bfloat16", "float16"] = "auto",
    ) -> None:
        self.device = torch.device(device)
        # Network passes in bf16 on a GPU (tensor cores; about half the memory traffic); on a CPU
        # without bf16 units (AVX2 only) it is slower than float32, so "auto" keeps float32 there.
        # Residuals, statistics and scores stay float32 either way.
        if precision == "auto":
            precision = "bfloat16" if self.device.type == "cuda" else "float32"
        self.autocast_dtype = None if precision == "float32" else getattr(torch, precision)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        # channels_last lets oneDNN (CPU) and cuDNN pick their fast convolution kernels: 1.6x on
        # this 2-core CPU for the default model, same numbers to float rounding.
        self.model = model.to(self.device, memory_format=self.memory_format).eval()
        self.extractor = extractor.to(self.device)
        self.scheduler_config = scheduler_config
        self.schedule = NoiseSchedule(scheduler_config)
        self.config = config
        self.stats = stats.to(self.device) if stats is not None else None
        self.timesteps = [self.schedule.strength_to_timestep(s) for s in config.strengths]
        self.batch_size = config.batch_size or (8 if self.device.type == "cpu" else 256)
        # One fixed noise draw per strength, made on the CPU so every device sees the same numbers.
        gen = torch.Generator().manual_seed(config.noise_seed)
        shape = extractor.spec.input_shape
        self.noise = torch.randn((len(self.timesteps), *shape), generator=gen).to(self.device)

    # -- reconstruction -------------------------------------------------------------------------
    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _net(self, x: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """The denoiser's epsilon, in float32 whatever precision the pass ran in."""
        with self._autocast():
            return self.model(x, t).float()

    def reconstruct(self, x0: torch.Tensor) -> list[torch.Tensor]:
        """One reconstruction of x0 per strength."""
        cfg = self.config
        if cfg.steps == 1:
            # All strengths in one network pass: x̂0 from x_t is exact algebra on epŝ.
            n, b = len(self.timesteps), x0.shape[0]
            t = torch.tensor(self.timesteps, device=self.device).repeat_interleave(b)
            noise = self.noise.repeat_interleave(b, dim=0)
            xt = self.schedule.add_noise(x0.repeat(n, 1, 1, 1), noise, t)
            x0_hat = self.schedule.pred_original(xt, self._net(xt, t), t)
            return list(x0_hat.split(b))
        out = []
        for i, strength in enumerate(cfg.strengths):
            sched = DDIMScheduler(self.scheduler_config)  # schedulers hold state: one per call
            sched.set_timesteps(cfg.steps, strength=strength)
            x = self.schedule.add_noise(x0, self.noise[i].expand_as(x0), int(sched.timesteps[0]))
            for t in sched.timesteps.tolist():
                x = sched.step(self._net(x, t), t, x).prev_sample
            out.append(x)
        return out

    @torch.inference_mode()
    def _raw(self, windows: torch.Tensor, every_component: bool = False) -> _Raw:
        ex = self.extractor
        windows = windows.to(self.device, torch.float32)
        norm = None
        if isinstance(ex, FeatureExtractor):
            log_mel = ex.log_mel.window(windows)
            norm, level = ex.normalise(log_mel), ex.level(log_mel)
            x0 = ex.to_input(norm)
        else:  # images: no time axis, no span
            x0, level = ex.inputs(windows)
        x0 = x0.contiguous(memory_format=self.memory_format)
        recons = self.reconstruct(x0)
        residual = torch.stack([(r - x0).pow(2).mean(1) for r in recons]).mean(0)
        # Level-free log-mel mean and spread per bin (what a clip Gaussian looks at) and the
        # residual per frequency row (what the denoiser could not rebuild), in log: both skewed.
        if norm is not None:
            profile = torch.cat([norm.mean(-1), norm.std(-1), residual.mean(-1).clamp_min(1e-6).log()], dim=1)
        else:
            profile = residual.new_zeros((residual.shape[0], 0))
        b = x0.shape[0]
        # Encoding the reconstructions costs twice the input's encoding: only when it is used.
        with_recons = every_component or self.config.weights.get("feature", 0) > 0
        with self._autocast():
            feats = self.model.encode(torch.cat([x0, *recons]) if with_recons else x0, self.config.feature_timestep)
        feats = [f.float() for f in feats]
        discrepancy = torch.zeros(b, device=self.device)
        if with_recons:
            for f in feats:
                ref, rec = f[:b], f[b:].reshape(len(recons), b, *f.shape[1:])
                cos = F.cosine_similarity(ref.unsqueeze(0), rec, dim=2)  # [L, B, h, w]
                discrepancy += (1 - cos).mean(dim=(0, 2, 3)) / len(feats)
        embedding = _pool_features([f[:b] for f in feats])
        return _Raw(residual, discrepancy, embedding, level, profile.float())

    def _raw_batched(self, windows: torch.Tensor, every_component: bool = False) -> _Raw:
        parts = [self._raw(chunk, every_component) for chunk in windows.split(self.batch_size)]
        return _Raw(*(torch.cat([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(_Raw)))

    # -- components -----------------------------------------------------------------------------
    def _components(self, raw: _Raw, stats: NormalStats) -> dict[str, torch.Tensor]:
        cfg = self.config
        z = (raw.residual - stats.residual_mean) / stats.residual_std
        k = cfg.smoothing
        smooth = F.avg_pool2d(z.unsqueeze(1), k, stride=1, padding=k // 2, count_include_pad=False).flatten(1)
        top = max(1, int(round(cfg.topk_fraction * smooth.shape[1])))
        d = raw.embedding - stats.embed_mean
        maha = _mahalanobis(d, stats.embed_precision)
        return {
            "recon_mean": z.flatten(1).mean(1),
            "recon_topk": smooth.topk(top, dim=1).values.mean(1),
            "feature": raw.feature,
            "embedding": maha,
            "level": raw.level,
        }

    @property
    def span_windows(self) -> int:
        """Windows in a full span (at the scoring hop)."""
        return max(1, round(self.config.span_seconds / self.config.hop_seconds))

    @property
    def span_min_windows(self) -> int:
        """Fewer windows than this (the start of a stream, after a gap) give no span component."""
        if self.stats is not None and self.stats.span_mean is not None and self.stats.span_count_mean is None:
            return max(2, self.span_windows // 2)  # a bundle from before the per-count scale: as it was fitted
        return min(self.span_windows, max(2, round(self.config.span_min_seconds / self.config.hop_seconds)))

    def new_span_state(self) -> SpanState:
        return SpanState(self.span_windows)

    def _span(self, profiles: torch.Tensor, streams: Sequence[SpanState | None] | None,
              stats: NormalStats) -> torch.Tensor:
        """[B] Mahalanobis distance of each window's span mean; NaN where there is no span yet."""
        out = torch.full((profiles.shape[0],), float("nan"))
        if streams is None or stats.span_mean is None or stats.span_precision is None:
            return out
        means, rows, counts = [], [], []
        for i, (p, st) in enumerate(zip(profiles.cpu(), streams, strict=True)):
            if st is None:
                continue
            mean, k = st.push(p)
            if k >= self.span_min_windows:
                means.append(mean)
                rows.append(i)
                counts.append(k)
        if rows:
            d = torch.stack(means).to(self.device) - stats.span_mean
            dist = _mahalanobis(d, stats.span_precision).cpu()
            out[rows] = stats.span_on_full_scale(dist, torch.tensor(counts))
        return out

    def combine(self, comps: dict[str, torch.Tensor], weights: dict[str, float] | None = None,
                level_tolerance_db: float | None = None) -> torch.Tensor:
        """Window scores from raw components (as `score` returns them) with other weights or level
        tolerance than the configured ones: rescoring without another network pass."""
        if self.stats is None:
            raise RuntimeError("scorer has no normal statistics; fit() it or load a trained bundle")
        cfg = dataclasses.replace(self.config, weights=dict(weights if weights is not None else self.config.weights),
                                  level_tolerance_db=self.config.level_tolerance_db if level_tolerance_db is None
                                  else level_tolerance_db)
        return self._combine({k: v.to(self.device) for k, v in comps.items()}, self.stats, cfg).cpu()

    def _combine(self, comps: dict[str, torch.Tensor], stats: NormalStats,
                 config: ScoringConfig | None = None) -> torch.Tensor:
        config = config or self.config
        # span without statistics (recordings shorter than a span at training) counts as weight 0
        w = {k: v for k, v in config.weights.items() if v > 0 and (k != "span" or "span" in stats.component_mean)}
        if not w:
            raise ValueError("scoring.weights: every component weight is 0; enable at least one")
        missing = [k for k in w if k not in stats.component_mean]
        if missing:
            raise ValueError(f"scoring.weights: this bundle has no statistics for {', '.join(missing)} (it predates "
                             "them); set their weight to 0 or retrain")
        zs = []
        for k, v in w.items():
            if k == "level":  # two-sided (louder or quieter), and a gain difference within the tolerance is no evidence
                z = ((comps[k] - stats.component_mean[k]).abs() - config.level_tolerance_db).clamp_min(0) \
                    / stats.component_std[k]
            else:
                z = (comps[k] - stats.component_mean[k]) / stats.component_std[k]
            zs.append(torch.nan_to_num(z, nan=0.0) * v)  # no span yet: no evidence either way
        zs = torch.stack(zs)
        return zs.max(0).values if config.combine == "max" else zs.sum(0) / sum(w.values())

    # -- public API -----------------------------------------------------------------------------
    def fit(self, fit_windows: torch.Tensor, holdout_windows: torch.Tensor,
            span_recordings: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None) -> NormalStats:
        """Fit residual, embedding and component statistics on normal windows.

        Bin and embedding statistics come from `fit_windows`; the component z-scaling from
        `holdout_windows`, which the first stage never saw, so that normal scores are honest.
        `span_recordings` (training, held-out) waveforms fit the span component the same way:
        its Gaussian on spans of the first, its z-scaling on spans of the second.
        """
        raw = self._raw_batched(fit_windows)  # residual and embedding only: the feature term needs none
        cov = LedoitWolf().fit(raw.embedding.double().cpu().numpy())
        stats = NormalStats(
            residual_mean=raw.residual.mean(0),
            residual_std=raw.residual.std(0).clamp_min(1e-6),
            embed_mean=torch.as_tensor(cov.location_, dtype=torch.float32, device=self.device),
            embed_precision=torch.as_tensor(cov.precision_, dtype=torch.float32, device=self.device),
            component_mean={},
            component_std={},
        )
        # Statistics for every component, so that any weights may be chosen at scoring time.
        comps = self._components(self._raw_batched(holdout_windows, every_component=True), stats)
        for name, values in comps.items():
            if name == "span":
                continue
            stats.component_mean[name] = float(values.mean())
            stats.component_std[name] = max(float(values.std()), 1e-6)
        if span_recordings is not None:
            self._fit_span(stats, *span_recordings)
        self.stats = stats
        return stats

    def _span_means(self, waves: list[torch.Tensor], limit: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
        """(span means, windows each holds) at every position with enough history, over
        recordings scored in order."""
        spec = self.extractor.spec
        hop = max(1, round(self.config.hop_seconds * spec.sample_rate))
        means: list[torch.Tensor] = []
        counts: list[int] = []
        for wave in waves:
            if len(means) >= limit or wave.numel() < spec.window_samples:
                continue
            profiles = self._raw_batched(sliding_windows(wave, spec.window_samples, hop).samples).profile.cpu()
            st = self.new_span_state()
            for p in profiles:
                mean, k = st.push(p)
                if k >= self.span_min_windows:
                    means.append(mean)
                    counts.append(k)
        return (torch.stack(means) if means else torch.zeros(0)), torch.tensor(counts, dtype=torch.long)

    def _fit_span(self, stats: NormalStats, train: list[torch.Tensor], holdout: list[torch.Tensor]) -> None:
        fit_means, fit_counts = self._span_means(train)
        if fit_means.shape[0] < 2:
            return  # recordings shorter than a span: no span component (its weight counts as 0)
        cov = LedoitWolf().fit(fit_means.double().numpy())
        stats.span_mean = torch.as_tensor(cov.location_, dtype=torch.float32, device=self.device)
        stats.span_precision = torch.as_tensor(cov.precision_, dtype=torch.float32, device=self.device)
        held, counts = self._span_means(holdout)
        if held.shape[0] < 2:
            held, counts = fit_means, fit_counts
        d = held.to(self.device) - stats.span_mean
        dist = _mahalanobis(d, stats.span_precision).cpu()
        stats.component_mean["span"] = float(dist.mean())
        stats.component_std["span"] = max(float(dist.std()), 1e-6)
        # Per count of windows held: a count the held-out recordings have too few of (longer than
        # they are, or rare) takes the scale of the nearest count below it that has enough, and
        # counts below the first that has enough take that one's; with none, one scale for all.
        scales: list[tuple[float, float] | None] = []
        for k in range(1, self.span_windows + 1):
            v = dist[counts == k]
            scales.append((float(v.mean()), max(float(v.std()), 1e-6)) if len(v) >= 3 else None)
        known = [sc for sc in scales if sc is not None]
        last = known[0] if known else (stats.component_mean["span"], stats.component_std["span"])
        filled = []
        for sc in scales:
            last = sc or last
            filled.append(last)
        stats.span_count_mean = [m for m, _ in filled]
        stats.span_count_std = [sd for _, sd in filled]

    @torch.inference_mode()
    def anomaly_map(self, inputs: torch.Tensor) -> torch.Tensor:
        """[B, H, W] at the model input's resolution: the per-bin z-scored reconstruction residual,
        box-smoothed as for recon_topk (where in the input the score comes from)."""
        if self.stats is None:
            raise RuntimeError("scorer has no normal statistics; fit() it or load a trained bundle")
        maps = []
        for chunk in inputs.split(self.batch_size):
            x0 = self.extractor(chunk.to(self.device, torch.float32)).contiguous(memory_format=self.memory_format)
            residual = torch.stack([(r - x0).pow(2).mean(1) for r in self.reconstruct(x0)]).mean(0)
            z = (residual - self.stats.residual_mean) / self.stats.residual_std
            k = self.config.smoothing
            maps.append(F.avg_pool2d(z.unsqueeze(1), k, stride=1, padding=k // 2, count_include_pad=False)[:, 0])
        return torch.cat(maps).cpu()

    def score(self, windows: torch.Tensor, streams: Sequence[SpanState | None] | None = None) -> ScoreResult:
        """Score waveform windows [B, window_samples] (any device). Deterministic.

        `streams` gives each window the history of the stream it belongs to (windows of one
        stream in order; the same SpanState for all of them): the span component. Without it
        each window is scored alone, with no span component."""
        if self.stats is None:
            raise RuntimeError("scorer has no normal statistics; fit() it or load a trained bundle")
        if windows.shape[0] == 0:
            empty = torch.zeros(0)
            return ScoreResult(empty, {k: empty for k in COMPONENTS})
        raw = self._raw_batched(windows)
        comps = self._components(raw, self.stats)
        comps["span"] = self._span(raw.profile, streams, self.stats).to(self.device)
        scores = self._combine(comps, self.stats)
        return ScoreResult(scores.cpu(), {k: v.cpu() for k, v in comps.items()})
