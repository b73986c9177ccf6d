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
- clip:       the clip Gaussian's view over the same span (the reference every round measured against):
              Mahalanobis distance of the span's per-band mean log-mel and per-band spread over time
              (from the windows' mean and mean square), under a Ledoit-Wolf Gaussian of such spans of
              the training recordings. With `clip_shape_only` (the default) the span's overall level
              is moved to normal first, so it hears spectral shape and leaves gain to the level
              component; bundles before round 10 move the level only up to `level_tolerance_db`.
- neighbours: the same span features as clip (gain-free likewise), measured by the mean distance to
              their nearest spans of the training recordings rather than by one Gaussian of them all:
              a normal class made of several kinds of sound (an air conditioner on many streets) is
              many clusters, and one Gaussian over them takes a sound between them for normal
              (docs/quality.md round 12).
- frames:     the DCASE autoencoder's view (sentinel.scoring.frames): log mean squared error of a small
              dense autoencoder, trained beside the network, rebuilding the window's raw log-mel 5
              frames at a time (level kept, moved at most `level_tolerance_db` towards normal; full
              mel resolution).
- machine:    fleet bundles only: -log p(own machine | window) from the classifier on the
              denoiser's machine-blind encoder (sentinel.diffusion.unet): how much less the window
              sounds like its own machine than like its siblings (or like the outliers it was shown).
              The decoder is told the machine, so the reconstruction terms measure the distance to
              that machine's normal sound, and every statistic is the machine's own.

This module measures the raw components; their z-scaling, combination, file score and verdict
are the bundle's post-processor (postprocess.py); their statistics are fitted at training
(sentinel.training.statistics); the noise-and-denoise loop is sentinel.diffusion.pipeline.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from sentinel.diffusion.pipeline import ReconstructionPipeline
from sentinel.diffusion.schedulers import SchedulerConfig
from sentinel.diffusion.unet import UNet, pool_features
from sentinel.features.extractor import FeatureExtractor
from sentinel.scoring.config import COMPONENTS, ScoringConfig
from sentinel.scoring.postprocess import PostProcessor
from sentinel.scoring.span import SpanState
from sentinel.scoring.stats import NormalStats, mahalanobis, nearest_distance
from sentinel.windows import sliding_windows

__all__ = ["COMPONENTS", "DiffusionScorer", "RecordingScores", "ScoreResult", "ScoringConfig", "SpanState",
           "WindowScorer"]


@dataclass
class ScoreResult:
    scores: torch.Tensor
    """[B] combined score per window (a z-like number: about 0 for typical normal audio)."""
    components: dict[str, torch.Tensor]
    """[B] raw (un-normalised) value of each component."""


@dataclass
class RecordingScores:
    starts_s: list[float]
    """Start of each window, seconds from the beginning of the recording."""
    window_s: float
    scores: torch.Tensor
    """[n] combined score of each window."""
    components: dict[str, torch.Tensor]


@dataclass
class Raw:
    """What one network pass measures of each window, before any statistics."""

    residual: torch.Tensor  # [B, H, W]
    feature: torch.Tensor  # [B]
    embedding: torch.Tensor  # [B, D]
    level: torch.Tensor  # [B]
    profile: torch.Tensor  # [B, P]: what the span component averages over time
    signature: torch.Tensor | None = None
    """[B, mels]: each band's peak over the window above its median (normalised log-mel): what a
    short sound adds to the machine's steady one, nearly blind to that background. What
    "that was normal" remembers a sound by (PostProcessor.accepted)."""
    logits: torch.Tensor | None = None
    """[B, machines + 1] fleet networks: which machine the encoder hears (0: none of them)."""
    frames: torch.Tensor | None = None
    """[B] bundles with a frame view: its log reconstruction error."""
    clip: torch.Tensor | None = None
    """[B, 2 mels]: each band's mean log-mel (dB, level kept) and its mean square over the window:
    averaged over a span they give the span's per-band mean and spread (the clip component)."""

    def rows(self, idx: torch.Tensor) -> Raw:
        """The same measurements for some windows only."""
        return Raw(*(None if getattr(self, f.name) is None else getattr(self, f.name)[idx.to(
            getattr(self, f.name).device)] for f in dataclasses.fields(Raw)))


class WindowScorer:
    """What the CLI and the daemon need of a scorer: `score(windows)`, `extractor.spec` (the
    window length), `config` (the hop), `post` (file score and verdict) and `score_recording`."""

    extractor: torch.nn.Module
    config: ScoringConfig
    post: PostProcessor
    batch_size: int
    machine: int | None = None
    """Fleet scorers: the machine (1-based id) this one scores as; None: a network of one machine."""

    def batch_key(self) -> object:
        """Scorers with one key score their windows in one batch (every machine of a fleet shares it)."""
        return self

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
        post: PostProcessor | None = None,
        device: torch.device | str = "cpu",
        channels_last: bool = True,
        precision: Literal["auto", "float32", "bfloat16", "float16"] = "auto",
        machine: int | None = None,
        fleet: dict[int, tuple[NormalStats, PostProcessor]] | None = None,
        frames: torch.nn.Module | None = None,
    ) -> None:
        """A fleet network's scorer is one machine's (`machine`, 1-based, with that machine's
        `stats` and `post`); `fleet` holds every machine's, so that `score(..., machines=)` scores
        windows of all of them in one network pass, and `view(m)` is machine m's scorer. `frames`
        (sentinel.scoring.frames.FrameReconstruction) gives the frames component."""
        self.device = torch.device(device)
        # Network passes in bf16 on a GPU (tensor cores; about half the memory traffic); on a CPU
        # without bf16 units (AVX2 only) it is slower than float32, so "auto" keeps float32 there.
        # Residuals, statistics and scores stay float32 either way.
        if precision == "auto":
            precision = "bfloat16" if self.device.type == "cuda" else "float32"
        autocast_dtype = None if precision == "float32" else getattr(torch, precision)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        # channels_last lets oneDNN (CPU) and cuDNN pick their fast convolution kernels: 1.6x on
        # this 2-core CPU for the default model, same numbers to float rounding.
        self.model = model.to(self.device, memory_format=self.memory_format).eval()
        self.frames = frames.to(self.device).eval() if frames is not None else None
        self.extractor = extractor.to(self.device)
        self.scheduler_config = scheduler_config
        self.config = config
        self.stats = stats.to(self.device) if stats is not None else None
        self.post = post if post is not None else PostProcessor(config)
        self.machine = machine
        self.fleet = {m: (st.to(self.device), pp) for m, (st, pp) in (fleet or {}).items()}
        self.batch_size = config.batch_size or (8 if self.device.type == "cpu" else 256)
        self.pipeline = ReconstructionPipeline(model, scheduler_config, config.strengths, config.steps,
                                               config.noise_seed, extractor.spec.input_shape, self.device,
                                               autocast_dtype)

    def reconstruct(self, x0: torch.Tensor, machines: torch.Tensor | None = None) -> list[torch.Tensor]:
        """One reconstruction of x0 per strength (a fleet network's: as each row's machine, by
        default this scorer's)."""
        if machines is None and self.machine is not None:
            machines = torch.full((x0.shape[0],), self.machine, dtype=torch.long)
        return self.pipeline(x0, machines)

    def batch_key(self) -> object:
        return self.pipeline  # the network and its fixed noise: shared by the views of one fleet

    def view(self, machine: int) -> DiffusionScorer:
        """Machine `machine`'s scorer of the same fleet: the same network, its own statistics."""
        if machine == self.machine:
            return self
        if machine not in self.fleet:
            raise KeyError(machine)
        out = copy.copy(self)
        out.machine, (out.stats, out.post) = machine, self.fleet[machine]
        return out

    def _need_stats(self) -> NormalStats:
        if self.stats is None or not self.post.component_mean:
            raise RuntimeError("scorer has no normal statistics; fit them (sentinel.training.statistics) or load "
                               "a trained bundle")
        return self.stats

    @torch.inference_mode()
    def _raw(self, windows: torch.Tensor, every_component: bool = False, machines: torch.Tensor | None = None) -> Raw:
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
        recons = self.reconstruct(x0, machines)
        residual = torch.stack([(r - x0).pow(2).mean(1) for r in recons]).mean(0)
        # Level-free log-mel mean and spread per bin (what a clip Gaussian looks at) and the
        # residual per frequency row (what the denoiser could not rebuild), in log: both skewed.
        if norm is not None:
            profile = torch.cat([norm.mean(-1), norm.std(-1), residual.mean(-1).clamp_min(1e-6).log()], dim=1)
            clip = torch.cat([log_mel.mean(-1), log_mel.pow(2).mean(-1)], dim=1).float()
        else:
            profile = residual.new_zeros((residual.shape[0], 0))
            clip = None
        b = x0.shape[0]
        # Encoding the reconstructions costs twice the input's encoding: only when it is used.
        with_recons = every_component or self.config.weights.get("feature", 0) > 0
        with self.pipeline.autocast():
            feats = self.model.encode(torch.cat([x0, *recons]) if with_recons else x0, self.config.feature_timestep)
        feats = [f.float() for f in feats]
        discrepancy = torch.zeros(b, device=self.device)
        if with_recons:
            for f in feats:
                ref, rec = f[:b], f[b:].reshape(len(recons), b, *f.shape[1:])
                cos = F.cosine_similarity(ref.unsqueeze(0), rec, dim=2)  # [L, B, h, w]
                discrepancy += (1 - cos).mean(dim=(0, 2, 3)) / len(feats)
        embedding = pool_features([f[:b] for f in feats])
        signature = (norm.amax(-1) - norm.median(-1).values).float() if norm is not None else None
        logits = None
        if self.model.config.num_machines:
            with self.pipeline.autocast():
                logits = self.model.classifier(embedding).float()
        frames = None
        if self.frames is not None and norm is not None:
            frames = self.frames(windows, self.config.level_tolerance_db).float()
        return Raw(residual, discrepancy, embedding, level, profile.float(), signature, logits, frames, clip)

    def raw(self, windows: torch.Tensor, every_component: bool = False, machines: torch.Tensor | None = None) -> Raw:
        """One network pass per batch of windows; `every_component` also encodes the reconstructions
        (the semantic term) whatever its weight; `machines` ([B] ids) denoises each window as its
        machine's (fleet networks; default this scorer's machine)."""
        ids = [None] * len(windows.split(self.batch_size)) if machines is None else machines.split(self.batch_size)
        parts = [self._raw(chunk, every_component, m) for chunk, m in zip(windows.split(self.batch_size), ids,
                                                                          strict=True)]
        return Raw(*(None if getattr(parts[0], f.name) is None else torch.cat([getattr(p, f.name) for p in parts])
                     for f in dataclasses.fields(Raw)))  # images have no signature

    def components(self, raw: Raw, stats: NormalStats) -> dict[str, torch.Tensor]:
        """Raw per-window components (all but the span) against the normal statistics."""
        cfg = self.config
        z = (raw.residual - stats.residual_mean) / stats.residual_std
        k = cfg.smoothing
        smooth = F.avg_pool2d(z.unsqueeze(1), k, stride=1, padding=k // 2, count_include_pad=False).flatten(1)
        top = max(1, int(round(cfg.topk_fraction * smooth.shape[1])))
        d = raw.embedding - stats.embed_mean
        out = {
            "recon_mean": z.flatten(1).mean(1),
            "recon_topk": smooth.topk(top, dim=1).values.mean(1),
            "feature": raw.feature,
            "embedding": mahalanobis(d, stats.embed_precision),
            "level": raw.level,
        }
        if raw.frames is not None:
            out["frames"] = raw.frames
        if raw.logits is not None and self.machine is not None:
            out["machine"] = raw.logits.logsumexp(1) - raw.logits[:, self.machine]
        return out

    @property
    def span_windows(self) -> int:
        """Windows in a full span (at the scoring hop)."""
        return max(1, round(self.config.span_seconds / self.config.hop_seconds))

    @property
    def span_min_windows(self) -> int:
        """Fewer windows than this (the start of a stream, after a gap) give no span component."""
        return min(self.span_windows, max(2, round(self.config.span_min_seconds / self.config.hop_seconds)))

    def new_span_state(self) -> SpanState:
        return SpanState(self.span_windows, self.config.span_trim)

    def span_distances(self, profiles: torch.Tensor, streams: Sequence[SpanState | None]) -> tuple[list, list, list]:
        """Push each window's profile onto its stream; (span means, their row, windows each holds)
        for the windows whose span is long enough to speak."""
        means, rows, counts = [], [], []
        for i, (p, st) in enumerate(zip(profiles.cpu(), streams, strict=True)):
            if st is None:
                continue
            mean, k = st.push(p)
            if k >= self.span_min_windows:
                means.append(mean)
                rows.append(i)
                counts.append(k)
        return means, rows, counts

    @property
    def clip_dims(self) -> int:
        """How many of a stream profile's entries are the clip component's (0: images)."""
        return 2 * self.extractor.spec.n_mels if isinstance(self.extractor, FeatureExtractor) else 0

    def stream_profile(self, raw: Raw) -> torch.Tensor:
        """[B, P (+ 2 mels)] what a stream's history holds of each window: the span's profile, then
        the clip component's per-band mean and mean square (audio only)."""
        return raw.profile if raw.clip is None else torch.cat([raw.profile, raw.clip.to(raw.profile.device)], 1)

    def clip_features(self, means: torch.Tensor, stats: NormalStats) -> torch.Tensor:
        """[N, 2 mels] per-band mean log-mel and spread of spans, from the span means of the clip
        profile ([N, 2 mels]), their level moved to normal (clip_shape_only) or up to
        `level_tolerance_db` towards it. The clip and neighbours components both read these."""
        assert stats.clip_profile_mean is not None
        mels = means.shape[1] // 2
        mu, square = means[:, :mels], means[:, mels:]
        spread = (square - mu.pow(2)).clamp_min(1e-6).sqrt()
        shift = mu.mean(1) - stats.clip_profile_mean[:mels].mean().to(mu.device)
        if not self.config.clip_shape_only:
            shift = shift.clamp(-self.config.level_tolerance_db, self.config.level_tolerance_db)
        return torch.cat([mu - shift[:, None], spread], dim=1)

    def neighbour_distance(self, feats: torch.Tensor, stats: NormalStats) -> torch.Tensor:
        """[N] the neighbours component of spans (their `clip_features`, [N, 2 mels]): the mean
        distance to the `neighbours_k` nearest spans of the training recordings, each band's mean
        and spread in units of its spread over them. Gain-free as the clip view is: with the level
        kept past the tolerance, a steady machine's tight spreads turned a 6 dB microphone gain into
        hundreds of false alarms an hour (docs/quality.md round 12); the level component hears gain."""
        assert stats.neighbour_memory is not None and stats.neighbour_centre is not None
        assert stats.neighbour_scale is not None
        scaled = (feats - stats.neighbour_centre.to(feats.device)) / stats.neighbour_scale.to(feats.device)
        return nearest_distance(scaled, stats.neighbour_memory, self.config.neighbours_k, stats.neighbour_recordings)

    def _span(self, profiles: torch.Tensor, streams: Sequence[SpanState | None] | None,
              stats: NormalStats) -> dict[str, torch.Tensor]:
        """{"span", "clip"}: [B] distance of each window's span, on a full span's scale; NaN where
        there is no span yet (or no statistics for the component)."""
        out = {k: torch.full((profiles.shape[0],), float("nan")) for k in ("span", "clip", "neighbours")}
        if streams is None or stats.span_mean is None or stats.span_precision is None:
            return out
        means, rows, counts = self.span_distances(profiles, streams)
        if rows:
            span_dims, n = stats.span_mean.shape[0], torch.tensor(counts)
            mean = torch.stack(means).to(self.device)
            dist = mahalanobis(mean[:, :span_dims] - stats.span_mean, stats.span_precision).cpu()
            out["span"][rows] = self.post.span_on_full_scale(dist, n)
            if self.clip_dims and stats.clip_profile_mean is not None:
                feats = self.clip_features(mean[:, span_dims:], stats)  # once, for clip and neighbours
                if stats.clip_precision is not None and stats.clip_mean is not None:
                    dist = mahalanobis(feats - stats.clip_mean, stats.clip_precision).cpu()
                    out["clip"][rows] = self.post.span_on_full_scale(dist, n, "clip")
                if stats.neighbour_memory is not None:
                    out["neighbours"][rows] = self.post.span_on_full_scale(
                        self.neighbour_distance(feats, stats).cpu(), n, "neighbours")
        return out

    def combine(self, comps: dict[str, torch.Tensor], weights: dict[str, float] | None = None,
                level_tolerance_db: float | None = None, combine: str | None = None) -> torch.Tensor:
        """Window scores from raw components (as `score` returns them) with other weights, level
        tolerance or combination than the bundle's: rescoring without another network pass."""
        self._need_stats()
        return self.post.window_scores({k: v.to(self.device) for k, v in comps.items()}, weights,
                                       level_tolerance_db, combine=combine).cpu()

    @torch.inference_mode()
    def anomaly_map(self, inputs: torch.Tensor) -> torch.Tensor:
        """[B, H, W] at the model input's resolution: the per-bin z-scored reconstruction residual,
        box-smoothed as for recon_topk (where in the input the score comes from)."""
        stats = self._need_stats()
        maps = []
        for chunk in inputs.split(self.batch_size):
            x0 = self.extractor(chunk.to(self.device, torch.float32)).contiguous(memory_format=self.memory_format)
            residual = torch.stack([(r - x0).pow(2).mean(1) for r in self.reconstruct(x0)]).mean(0)
            z = (residual - stats.residual_mean) / stats.residual_std
            k = self.config.smoothing
            maps.append(F.avg_pool2d(z.unsqueeze(1), k, stride=1, padding=k // 2, count_include_pad=False)[:, 0])
        return torch.cat(maps).cpu()

    def score(self, windows: torch.Tensor, streams: Sequence[SpanState | None] | None = None,
              machines: Sequence[int] | None = None) -> ScoreResult:
        """Score waveform windows [B, window_samples] (any device). Deterministic.

        `streams` gives each window the history of the stream it belongs to (windows of one
        stream in order; the same SpanState for all of them): the span component. Without it
        each window is scored alone, with no span component. `machines` (fleet scorers) says
        whose each window is: all of the fleet's windows go through the network in one pass,
        then each is measured against its own machine's statistics."""
        self._need_stats()
        if windows.shape[0] == 0:
            empty = torch.zeros(0)
            return ScoreResult(empty, {k: empty for k in COMPONENTS})
        if machines is None or set(machines) == {self.machine}:
            return self._finish(self.raw(windows), streams)
        try:
            views = {m: self.view(m) for m in dict.fromkeys(machines)}
        except KeyError as e:
            raise ValueError(f"machine id {e.args[0]} is not one of this fleet's ({sorted(self.fleet)})") from None
        ids = torch.tensor(list(machines), dtype=torch.long)
        raw = self.raw(windows, machines=ids)
        scores = torch.zeros(windows.shape[0])
        comps: dict[str, torch.Tensor] = {}
        for m, view in views.items():
            idx = (ids == m).nonzero().flatten()
            part = view._finish(raw.rows(idx), None if streams is None else [streams[i] for i in idx.tolist()])
            scores[idx] = part.scores
            for k, v in part.components.items():
                comps.setdefault(k, torch.full((windows.shape[0],), float("nan")))[idx] = v
        return ScoreResult(scores, comps)

    def _finish(self, raw: Raw, streams: Sequence[SpanState | None] | None) -> ScoreResult:
        """Components, span and window scores of one machine's (or a single network's) windows."""
        stats = self._need_stats()
        comps = self.components(raw, stats)
        profiles = self.stream_profile(raw)
        if self.post.accepted is not None and raw.signature is not None and stats.span_mean is not None:
            # An accepted sound is normal in the span too: it enters the stream's history as the
            # normal mean profile, so it leaves no long tail of span evidence behind it.
            near = self.post.accepted_near(raw.signature)
            normal = profiles.clone()
            normal[:, : stats.span_mean.shape[0]] = stats.span_mean.to(profiles.device)
            if stats.clip_profile_mean is not None:
                normal[:, stats.span_mean.shape[0]:] = stats.clip_profile_mean.to(profiles.device)
            profiles = torch.where(near[:, None], normal, profiles)
        comps |= {k: v.to(self.device) for k, v in self._span(profiles, streams, stats).items()}
        scores = self.post.window_scores(comps, profiles=raw.signature)
        return ScoreResult(scores.cpu(), {k: v.cpu() for k, v in comps.items()})
