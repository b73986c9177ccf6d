"""From raw components to a verdict, in one object saved with the bundle (anomalib's idea).

    raw components --(z-scale by normal audio)--> component z-scores --(weights, combine)-->
    window score --(file aggregate)--> file score;  window score > threshold --> flagged

`sentinel score`, `eval`, `calibrate`, the HTML report and `sentinel run` all ask this object;
nothing else writes any step of the rule. A recording is *flagged* when any window crosses the
threshold (what the daemon alerts on), whatever aggregate ranks recordings.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from sentinel.scoring.calibration import Calibration
from sentinel.scoring.config import OPTIONAL, ScoringConfig

MIN_STD = {"machine": 1.0}
"""Least spread a component's z-scaling may use. The machine classifier is all but certain on
normal held-out windows (-log p of the own machine ~1e-4 nats, spread ~1e-4), so its own spread
would blow a hair's doubt up into a z of tens (44 false alarms per hour on the fleet benchmark);
its scale is nats: a window given e times less chance of being its own machine moves one unit."""
TAIL_LEVELS = (0.5, 0.75, 0.9, 0.95, 0.99)
"""Quantiles of each component's held-out normal z-scores kept for the tail fusion."""


def tail_score(z: torch.Tensor, table: list[float]) -> torch.Tensor:
    """-log10 of the share of held-out normal windows at or above z (0 at their median and below),
    piecewise linear between the stored quantiles, and past the last one an exponential tail as
    steep as the normal audio's own from its 90th to its 99th percentile (one decade each such step)."""
    q = torch.tensor(table, dtype=z.dtype, device=z.device)
    logp = torch.tensor([-torch.log10(torch.tensor(1 - lv)).item() for lv in TAIL_LEVELS], dtype=z.dtype,
                        device=z.device)
    logp = logp - logp[0]
    idx = torch.searchsorted(q, z.contiguous()).clamp(1, len(table) - 1)
    lo, hi = q[idx - 1], q[idx]
    frac = ((z - lo) / (hi - lo).clamp_min(1e-6)).clamp(0, 1)
    inside = logp[idx - 1] + frac * (logp[idx] - logp[idx - 1])
    # z from the 90th to the 99th percentile; at least half a spread, so that a component whose normal
    # values never move (level within its tolerance) does not jump decades for a hair past them
    decade = (q[-1] - q[2]).clamp_min(0.5)
    beyond = logp[-1] + (z - q[-1]) / decade
    return torch.where(z > q[-1], beyond, torch.where(z < q[0], torch.zeros_like(z), inside))


@dataclass
class PostProcessor:
    config: ScoringConfig
    """Weights, combination, level tolerance and file aggregate (the bundle's scoring recipe)."""
    component_mean: dict[str, float] = dataclasses.field(default_factory=dict)
    """Mean of each raw component on held-out normal audio (empty: scores are used as they are,
    as the autoencoder baseline's reconstruction error is)."""
    component_std: dict[str, float] = dataclasses.field(default_factory=dict)
    span_count_mean: list[float] | None = None
    """Mean span distance of held-out normal audio by windows held (index = count - 1); None: one scale."""
    span_count_std: list[float] | None = None
    clip_count_mean: list[float] | None = None
    """The same for the clip component's distance (index = count - 1); None: one scale."""
    clip_count_std: list[float] | None = None
    neighbours_count_mean: list[float] | None = None
    """The same for the neighbours component's distance; None: one scale."""
    neighbours_count_std: list[float] | None = None
    calibration: Calibration | None = None
    """The threshold and how it was set; None: not calibrated (scores, but no verdicts)."""
    accepted: torch.Tensor | None = None
    """[K, mels] window signatures (scorer.Raw.signature) of sounds a user said were normal
    (sentinel feedback): a window within `accepted_radius` of one of them scores as a typical
    normal window. None: none."""
    accepted_radius: torch.Tensor | None = None
    """[K] how near (RMS over the signature, in normal-spread units) counts as that sound: most of
    the way from it to the normal audio before it in its clip (feedback_job.RADIUS_SHARE)."""
    accepted_events: list[str] = dataclasses.field(default_factory=list)
    """[K] the event each accepted profile came from (so one feedback can be undone)."""
    component_tail: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    """Each component's held-out normal z-scores at TAIL_LEVELS (the `tail` fusion's scale)."""
    fusion: dict | None = None
    """{"weights": ..., "combine": ...} chosen for this bundle at training from its own held-out
    audio and pseudo-anomalies made of it (sentinel.training.fusion); None: the recipe's."""

    # -- normalisation and combination ---------------------------------------------------------
    @property
    def threshold(self) -> float | None:
        return self.calibration.threshold if self.calibration else None

    OFF_MARGIN_DB = 6.0
    """How far below the quietest normal level (and the gain tolerance) a window must be to count as off."""
    QUIETER_DB = 3.0
    """A window this much quieter than normal audio's mean level may be a machine stopping."""

    def level_bounds(self) -> tuple[float, float] | None:
        """(quieter than usual, off) window levels (mean log-mel, dB): quieter than the first, a window
        may be a machine spinning down; below the second (4 spreads under normal audio's mean level,
        less the gain tolerance and a margin) it counts as off. None when the bundle has no level."""
        if "level" not in self.component_mean:
            return None
        mean, std = self.component_mean["level"], self.component_std["level"]
        return mean - self.QUIETER_DB, mean - 4 * std - self.config.level_tolerance_db - self.OFF_MARGIN_DB

    def span_on_full_scale(self, dist: torch.Tensor, counts: torch.Tensor, name: str = "span") -> torch.Tensor:
        """Distances of a stream component (span, clip, neighbours) over `counts` windows, moved onto the scale
        of a full span's: (d - mean_k) / std_k * std + mean, so that the component's one z-scaling
        fits every count."""
        count_mean, count_std = getattr(self, f"{name}_count_mean"), getattr(self, f"{name}_count_std")
        if count_mean is None or count_std is None or name not in self.component_mean:
            return dist
        idx = (counts.long() - 1).clamp(0, len(count_mean) - 1).cpu()
        m = torch.tensor(count_mean, dtype=dist.dtype)[idx].to(dist.device)
        sd = torch.tensor(count_std, dtype=dist.dtype)[idx].to(dist.device)
        return (dist - m) / sd * self.component_std[name] + self.component_mean[name]

    def window_scores(self, comps: dict[str, torch.Tensor], weights: dict[str, float] | None = None,
                      level_tolerance_db: float | None = None, profiles: torch.Tensor | None = None,
                      combine: str | None = None) -> torch.Tensor:
        """[B] window scores from raw components; `weights` / `level_tolerance_db` / `combine`
        other than the bundle's rescore without another network pass (benchmarks, ablations, the
        fusion choice). With `profiles` ([B, P]), windows that sound like an accepted sound score
        as normal."""
        scores = self._combined(comps, weights, level_tolerance_db, combine)
        if profiles is None or self.accepted is None or not len(self.accepted_events):
            return scores
        near = self.accepted_near(profiles.to(scores.device))
        typical = self.calibration.normal_quantiles.get("q500", 0.0) if self.calibration else 0.0
        return torch.where(near, scores.clamp_max(typical), scores)

    def accepted_near(self, profiles: torch.Tensor) -> torch.Tensor:
        """[B] True where a window's profile lies within the radius of an accepted sound's."""
        assert self.accepted is not None and self.accepted_radius is not None
        acc = self.accepted.to(profiles.device, profiles.dtype)
        d = torch.cdist(profiles, acc) / profiles.shape[1] ** 0.5  # [B, K], RMS per profile entry
        return (d < self.accepted_radius.to(d.device, d.dtype)).any(1)

    def with_accepted(self, event_id: str, profiles: torch.Tensor, radius: float) -> PostProcessor:
        """A copy that also accepts these window profiles (of one event) as normal."""
        rows = profiles.detach().float().cpu()
        radii = torch.full((rows.shape[0],), float(radius))
        acc = rows if self.accepted is None else torch.cat([self.accepted, rows])
        rad = radii if self.accepted_radius is None else torch.cat([self.accepted_radius, radii])
        return dataclasses.replace(self, accepted=acc, accepted_radius=rad,
                                   accepted_events=[*self.accepted_events, *[event_id] * rows.shape[0]])

    def without_accepted(self, event_id: str) -> PostProcessor:
        """A copy that no longer accepts what one event's feedback added (undo)."""
        keep = [i for i, e in enumerate(self.accepted_events) if e != event_id]
        if not keep:
            return dataclasses.replace(self, accepted=None, accepted_radius=None, accepted_events=[])
        idx = torch.tensor(keep)
        assert self.accepted is not None and self.accepted_radius is not None
        return dataclasses.replace(self, accepted=self.accepted[idx], accepted_radius=self.accepted_radius[idx],
                                   accepted_events=[self.accepted_events[i] for i in keep])

    def _combined(self, comps: dict[str, torch.Tensor], weights: dict[str, float] | None,
                  level_tolerance_db: float | None, combine: str | None = None) -> torch.Tensor:
        cfg = self.config
        fusion = self.fusion or {}
        explicit = weights is not None
        weights = weights if explicit else fusion.get("weights", cfg.weights)
        # explicit weights (ablations) combine as the recipe does unless told otherwise
        combine = combine or (cfg.combine if explicit else fusion.get("combine", cfg.combine))
        tolerance = cfg.level_tolerance_db if level_tolerance_db is None else level_tolerance_db
        # span without statistics (recordings shorter than a span at training), machine without a
        # fleet, frames from a scorer built without the bundle's frame view: weight 0
        w = {k: v for k, v in weights.items()
             if v > 0 and (k not in OPTIONAL or (k in self.component_mean and k in comps))}
        if not w:
            raise ValueError("scoring.weights: every component weight is 0; enable at least one")
        missing = [k for k in w if k not in self.component_mean]
        if missing:
            raise ValueError(f"scoring.weights: this bundle has no statistics for {', '.join(missing)} (it predates "
                             "them); set their weight to 0 or retrain")
        if combine == "tail":
            missing = [k for k in w if k not in self.component_tail]
            if missing:
                raise ValueError(f"scoring.combine: tail needs held-out quantiles this bundle lacks ({missing[0]}); "
                                 "retrain it or combine by mean")
        zs = []
        for k, v in w.items():
            z = self.z_score(k, comps[k], tolerance)
            if combine == "tail":
                z = tail_score(z, self.component_tail[k])
            zs.append(torch.nan_to_num(z, nan=0.0) * v)  # no span yet: no evidence either way
        stacked = torch.stack(zs)
        return stacked.max(0).values if combine == "max" else stacked.sum(0) / sum(w.values())

    def z_score(self, name: str, values: torch.Tensor, level_tolerance_db: float | None = None) -> torch.Tensor:
        """One raw component against held-out normal audio."""
        tolerance = self.config.level_tolerance_db if level_tolerance_db is None else level_tolerance_db
        d = values - self.component_mean[name]
        # level is two-sided (louder or quieter), and a gain difference within the tolerance is no evidence
        return ((d.abs() - tolerance).clamp_min(0) if name == "level" else d) / self.component_std[name]

    def fit_tail(self, name: str, values: torch.Tensor) -> None:
        """Keep the held-out normal z-scores' quantiles of one component (its mean and std set)."""
        z = self.z_score(name, values.float()).flatten()
        z = z[torch.isfinite(z)]
        if z.numel() >= 10:
            qs = torch.quantile(z.cpu(), torch.tensor(TAIL_LEVELS)).tolist()
            self.component_tail[name] = [float(v) for v in torch.tensor(qs).cummax(0).values]

    # -- recordings and verdicts ---------------------------------------------------------------
    def file_score(self, scores: torch.Tensor) -> float:
        """One number that ranks a recording, from its window scores (scoring.file_aggregate)."""
        if scores.numel() == 0:
            return float("nan")
        aggregate = self.config.file_aggregate
        if aggregate == "max":
            return float(scores.max())
        if aggregate == "top3":
            return float(scores.topk(min(3, scores.numel())).values.mean())
        return float(scores.mean())

    def window_flagged(self, score: float, threshold: float | None = None) -> bool | None:
        """A window is anomalous above the threshold (a source's own, else the calibrated one);
        None when there is no threshold."""
        thr = self.threshold if threshold is None else threshold
        return None if thr is None else bool(score > thr)

    def flagged(self, scores: torch.Tensor, threshold: float | None = None) -> bool | None:
        """A recording is flagged when any of its windows is (what the daemon would alert on)."""
        if scores.numel() == 0:
            return None if (self.threshold if threshold is None else threshold) is None else False
        return self.window_flagged(float(scores.max()), threshold)

    # -- bundle.json ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        out: dict = {"component_mean": self.component_mean, "component_std": self.component_std,
                     "span_count_mean": self.span_count_mean, "span_count_std": self.span_count_std,
                     "clip_count_mean": self.clip_count_mean, "clip_count_std": self.clip_count_std,
                     "neighbours_count_mean": self.neighbours_count_mean,
                     "neighbours_count_std": self.neighbours_count_std,
                     "calibration": self.calibration.to_dict() if self.calibration else None,
                     "component_tail": self.component_tail, "fusion": self.fusion}
        if self.accepted_events:  # the profiles themselves are tensors: weights.safetensors (tensors())
            out["accepted_events"] = self.accepted_events
        return out

    def tensors(self) -> dict[str, torch.Tensor]:
        if self.accepted is None or not self.accepted_events:
            return {}
        assert self.accepted_radius is not None
        return {"post.accepted": self.accepted, "post.accepted_radius": self.accepted_radius}

    @classmethod
    def from_dict(cls, config: ScoringConfig, d: dict, tensors: dict[str, torch.Tensor] | None = None) -> PostProcessor:
        cal = d.get("calibration")
        t = tensors or {}
        events = list(d.get("accepted_events") or [])
        return cls(config, component_mean=dict(d.get("component_mean") or {}),
                   component_std=dict(d.get("component_std") or {}),
                   span_count_mean=d.get("span_count_mean"), span_count_std=d.get("span_count_std"),
                   clip_count_mean=d.get("clip_count_mean"), clip_count_std=d.get("clip_count_std"),
                   neighbours_count_mean=d.get("neighbours_count_mean"),
                   neighbours_count_std=d.get("neighbours_count_std"),
                   calibration=Calibration.from_dict(cal) if cal else None,
                   accepted=t.get("post.accepted") if events else None,
                   accepted_radius=t.get("post.accepted_radius") if events else None, accepted_events=events,
                   component_tail=dict(d.get("component_tail") or {}), fusion=d.get("fusion"))
