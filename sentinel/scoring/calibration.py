"""Thresholds from normal audio only: a target false-alarm rate, or a quantile of normal scores."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass
class Calibration:
    threshold: float
    method: str
    """'false_alarms_per_hour' or 'quantile'."""
    target: float
    """The rate (alarms per hour) or quantile asked for."""
    hop_seconds: float
    n_windows: int
    n_files: int
    normal_mean: float
    normal_std: float
    normal_quantiles: dict[str, float]
    gamma: dict[str, float]
    """Gamma fit (shape a, loc, scale) of normal window scores, the DCASE baseline's choice."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Calibration:
        return cls(**d)


def _fit_gamma(scores: np.ndarray) -> tuple[float, float, float]:
    # Fixing loc just below the smallest score keeps the fit stable on z-like scores (which
    # can be negative); a free loc often wanders off on a few hundred samples.
    spread = float(scores.std()) or 1.0
    loc = float(scores.min()) - 0.05 * spread
    a, loc, scale = stats.gamma.fit(scores, floc=loc)
    return float(a), float(loc), float(scale)


def calibrate(
    scores: np.ndarray,
    hop_seconds: float,
    n_files: int,
    false_alarms_per_hour: float | None = None,
    quantile: float | None = None,
) -> Calibration:
    """Window threshold from normal window scores.

    With a rate R per hour and windows every `hop_seconds`, a window may be a false alarm with
    probability p = R * hop / 3600. That tail is usually beyond the calibration data, so it is
    read off a gamma fit; the threshold never falls below the empirical (1 - p) quantile, so a
    poor fit cannot flag the calibration audio itself more often than asked.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size < 2:
        raise ValueError("calibration needs at least 2 normal windows")
    if (false_alarms_per_hour is None) == (quantile is None):
        raise ValueError("give exactly one of false_alarms_per_hour or quantile")
    a, loc, scale = _fit_gamma(scores)
    if quantile is not None:
        if not 0 < quantile < 1:
            raise ValueError(f"--quantile must be in (0, 1), got {quantile}")
        method, target, threshold = "quantile", quantile, float(np.quantile(scores, quantile))
    elif false_alarms_per_hour is not None:
        if false_alarms_per_hour <= 0:
            raise ValueError(f"--false-alarms-per-hour must be > 0, got {false_alarms_per_hour}")
        p = min(1.0, false_alarms_per_hour * hop_seconds / 3600.0)
        fitted = float(stats.gamma.ppf(1 - p, a, loc=loc, scale=scale))
        empirical = float(np.quantile(scores, 1 - p))
        method, target, threshold = "false_alarms_per_hour", false_alarms_per_hour, max(fitted, empirical)
    qs = {f"q{int(q * 1000):03d}": float(np.quantile(scores, q)) for q in (0.5, 0.9, 0.99, 0.999)}
    return Calibration(
        threshold=threshold,
        method=method,
        target=float(target),
        hop_seconds=hop_seconds,
        n_windows=int(scores.size),
        n_files=n_files,
        normal_mean=float(scores.mean()),
        normal_std=float(scores.std()),
        normal_quantiles=qs,
        gamma={"a": a, "loc": loc, "scale": scale},
    )
