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
              only gets louder or quieter is seen here.
"""

from __future__ import annotations

import contextlib
import dataclasses
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

COMPONENTS = ("recon_mean", "recon_topk", "feature", "embedding", "level")
TWO_SIDED = ("level",)
"""Components whose deviation either way is anomalous: they enter the score as |z|."""


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
        dict[Literal["recon_mean", "recon_topk", "feature", "embedding", "level"], float],
        Field(
            description="Weight of each normalised component in the combined score (0 disables it; "
            "'feature' is off by default: on the dev set it added cost and no AUC; 'level' is half "
            "weight: microphone gain varies, raise it where the gain is fixed)."
        ),
    ] = field(default_factory=lambda: {"recon_mean": 1.0, "recon_topk": 1.0, "feature": 0.0, "embedding": 1.0,
                                       "level": 0.5})
    combine: Annotated[
        Literal["mean", "max"], Field(description="Weighted mean of component z-scores, or their weighted max.")
    ] = "mean"
    hop_seconds: Annotated[float, Field(gt=0, description="Hop between windows when scoring a file, s.")] = 0.5
    file_aggregate: Annotated[
        Literal["max", "mean"], Field(description="File score from window scores: max (any window) or mean.")
    ] = "max"
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

    def tensors(self) -> dict[str, torch.Tensor]:
        return {
            "stats.residual_mean": self.residual_mean,
            "stats.residual_std": self.residual_std,
            "stats.embed_mean": self.embed_mean,
            "stats.embed_precision": self.embed_precision,
        }

    def json(self) -> dict:
        return {"component_mean": self.component_mean, "component_std": self.component_std}

    def to(self, device: torch.device) -> NormalStats:
        return dataclasses.replace(
            self, **{k.split(".", 1)[1]: v.to(device) for k, v in self.tensors().items()}
        )

    @classmethod
    def from_parts(cls, tensors: dict[str, torch.Tensor], meta: dict) -> NormalStats:
        return cls(
            residual_mean=tensors["stats.residual_mean"],
            residual_std=tensors["stats.residual_std"],
            embed_mean=tensors["stats.embed_mean"],
            embed_precision=tensors["stats.embed_precision"],
            component_mean=dict(meta["component_mean"]),
            component_std=dict(meta["component_std"]),
        )


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


def _pool_features(feats: list[torch.Tensor]) -> torch.Tensor:
    """Mean and std over time-frequency of every channel at every scale -> [B, D]."""
    parts = []
    for f in feats:
        flat = f.flatten(2)
        parts += [flat.mean(-1), flat.std(-1)]
    return torch.cat(parts, dim=1)


class WindowScorer:
    """What the CLI and the daemon need of a scorer: `score(windows)`, `extractor.spec` (the
    window length), `config` (hop, file aggregate) and `score_recording`."""

    extractor: torch.nn.Module
    config: ScoringConfig
    batch_size: int

    def score(self, windows: torch.Tensor) -> ScoreResult:
        raise NotImplementedError

    def score_recording(self, wave: torch.Tensor) -> RecordingScores:
        """Score a whole recording [N] in overlapping windows (hop from the config)."""
        spec = self.extractor.spec
        hop = max(1, round(self.config.hop_seconds * spec.sample_rate))
        w = sliding_windows(wave, spec.window_samples, hop)
        res = self.score(w.samples)
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
        x0, level = self.extractor.inputs(windows.to(self.device, torch.float32))
        x0 = x0.contiguous(memory_format=self.memory_format)
        recons = self.reconstruct(x0)
        residual = torch.stack([(r - x0).pow(2).mean(1) for r in recons]).mean(0)
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
        return _Raw(residual, discrepancy, embedding, level)

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
        maha = ((d @ stats.embed_precision) * d).sum(1).clamp_min(0).sqrt()
        return {
            "recon_mean": z.flatten(1).mean(1),
            "recon_topk": smooth.topk(top, dim=1).values.mean(1),
            "feature": raw.feature,
            "embedding": maha,
            "level": raw.level,
        }

    def _combine(self, comps: dict[str, torch.Tensor], stats: NormalStats) -> torch.Tensor:
        w = {k: v for k, v in self.config.weights.items() if v > 0}
        if not w:
            raise ValueError("scoring.weights: every component weight is 0; enable at least one")
        missing = [k for k in w if k not in stats.component_mean]
        if missing:
            raise ValueError(f"scoring.weights: this bundle has no statistics for {', '.join(missing)} (it predates "
                             "them); set their weight to 0 or retrain")
        zs = []
        for k, v in w.items():
            z = (comps[k] - stats.component_mean[k]) / stats.component_std[k]
            zs.append((z.abs() if k in TWO_SIDED else z) * v)
        zs = torch.stack(zs)
        return zs.max(0).values if self.config.combine == "max" else zs.sum(0) / sum(w.values())

    # -- public API -----------------------------------------------------------------------------
    def fit(self, fit_windows: torch.Tensor, holdout_windows: torch.Tensor) -> NormalStats:
        """Fit residual, embedding and component statistics on normal windows.

        Bin and embedding statistics come from `fit_windows`; the component z-scaling from
        `holdout_windows`, which the first stage never saw, so that normal scores are honest.
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
            stats.component_mean[name] = float(values.mean())
            stats.component_std[name] = max(float(values.std()), 1e-6)
        self.stats = stats
        return stats

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

    def score(self, windows: torch.Tensor) -> ScoreResult:
        """Score waveform windows [B, window_samples] (any device). Deterministic."""
        if self.stats is None:
            raise RuntimeError("scorer has no normal statistics; fit() it or load a trained bundle")
        if windows.shape[0] == 0:
            empty = torch.zeros(0)
            return ScoreResult(empty, {k: empty for k in COMPONENTS})
        comps = self._components(self._raw_batched(windows), self.stats)
        scores = self._combine(comps, self.stats)
        return ScoreResult(scores.cpu(), {k: v.cpu() for k, v in comps.items()})
