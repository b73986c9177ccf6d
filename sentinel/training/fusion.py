"""Choosing how a bundle fuses its components, from its own data: held-out normal recordings and
pseudo-anomalies made of them (never the test set, which a user does not have).

Which component carries a machine's faults differs between machines (a fan's faults may live in
the long-span spectrum, a pump's in short events), and one fixed mean of z-scores dilutes the
component that speaks with the ones that do not. So at the end of training each candidate fusion
ranks the held-out recordings against altered copies of them: a spectral tilt, a raised
harmonic, a shifted band, impulses, short dropouts, foreign sound mixed in, the recording made
steady (its own spectrum without its time structure); the candidate with
the best mean AUC and pAUC over those kinds is kept in the post-processor (`PostProcessor.fusion`),
if it is better than the recipe by more than the held-out sample's own noise (a paired bootstrap).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from sentinel.evaluation import MAX_FPR
from sentinel.scoring.postprocess import PostProcessor
from sentinel.scoring.scorer import DiffusionScorer

N_FFT, HOP = 1024, 256
MIN_RECORDINGS = 4
"""Fewer held-out recordings than this rank too coarsely to choose by: the recipe's fusion stays."""
BOOTSTRAPS = 200
CONFIDENCE = 0.9
"""A candidate replaces the recipe only if it ranks the pseudo-anomalies better in this share of
bootstrap resamples of the held-out recordings (a one-sided 90 % level, not tuned)."""


def _stft(x: torch.Tensor) -> torch.Tensor:
    return torch.stft(x, N_FFT, HOP, window=torch.hann_window(N_FFT), return_complex=True)


def _istft(spec: torch.Tensor, n: int) -> torch.Tensor:
    return torch.istft(spec, N_FFT, HOP, window=torch.hann_window(N_FFT), length=n)


def _rms(x: torch.Tensor) -> float:
    return float(x.pow(2).mean().sqrt()) + 1e-9


def tilt(x: torch.Tensor, sr: int, g: torch.Generator) -> torch.Tensor:
    """The whole spectrum tilted by 1-2 dB per octave around 1 kHz (clogged intake, worn bearing grease)."""
    slope = (1 + 1 * float(torch.rand(1, generator=g))) * (1 if torch.rand(1, generator=g) < 0.5 else -1)
    f = torch.linspace(0, sr / 2, N_FFT // 2 + 1).clamp_min(50.0)
    gain = 10 ** (slope * torch.log2(f / 1000) / 20)
    return _istft(_stft(x) * gain[:, None], len(x))


def harmonic(x: torch.Tensor, sr: int, g: torch.Generator) -> torch.Tensor:
    """One multiple (2-5x) of the strongest low peak raised 6-10 dB (a loosened mount), or a tone added
    there where the sound has none."""
    spec = _stft(x)
    mag = spec.abs().mean(1)
    freqs = torch.linspace(0, sr / 2, len(mag))
    low = (freqs > 20) & (freqs < 1000)
    f0 = float(freqs[low][mag[low].argmax()])
    k = int(torch.randint(2, 6, (1,), generator=g))
    centre = min(f0 * k, sr / 2 * 0.9)
    gain_db = 6 + 4 * float(torch.rand(1, generator=g))
    near = ((freqs - centre).abs() <= 2 * sr / N_FFT).float()  # +-2 bins
    raised = _istft(spec * (1 + near * (10 ** (gain_db / 20) - 1))[:, None], len(x))
    t = torch.arange(len(x)) / sr
    tone = torch.sin(2 * math.pi * centre * t) * _rms(x) * 10 ** (-24 / 20) * math.sqrt(2)
    return raised + tone


def band_shift(x: torch.Tensor, sr: int, g: torch.Generator) -> torch.Tensor:
    """Every resonance moved 2-4 % up or down (a speed or housing change): the magnitude spectrum
    resampled along frequency, the phase kept."""
    spec = _stft(x)
    factor = (1.02 + 0.02 * float(torch.rand(1, generator=g))) ** (1 if torch.rand(1, generator=g) < 0.5 else -1)
    bins = spec.shape[0]
    src = (torch.arange(bins) / factor).clamp(0, bins - 1)
    lo = src.floor().long()
    hi = (lo + 1).clamp_max(bins - 1)
    w = (src - lo)[:, None]
    mag = spec.abs()
    warped = mag[lo] * (1 - w) + mag[hi] * w
    return _istft(torch.polar(warped, spec.angle()), len(x))


def impulses(x: torch.Tensor, sr: int, g: torch.Generator) -> torch.Tensor:
    """A train of short ringing clicks (4-12 per second, 1.5-4 kHz), 20-28 dB under the sound (a rattle)."""
    n = len(x)
    rate = 4 + 8 * float(torch.rand(1, generator=g))
    times = torch.arange(0, n / sr, 1 / rate) + float(torch.rand(1, generator=g)) / rate
    t = torch.arange(int(0.01 * sr)) / sr
    f = 1500 + 2500 * float(torch.rand(1, generator=g))
    click = torch.sin(2 * math.pi * f * t) * torch.exp(-t / 0.002)
    y = torch.zeros(n)
    for s in (times * sr).long().tolist():
        m = min(len(click), n - s)
        if m > 0:
            y[s: s + m] += click[:m]
    level = -20 - 8 * float(torch.rand(1, generator=g))
    return x + y * _rms(x) / _rms(y) * 10 ** (level / 20)


def dropouts(x: torch.Tensor, sr: int, g: torch.Generator) -> torch.Tensor:
    """Three 20-60 ms stretches 10 dB down (an intermittent contact)."""
    y = x.clone()
    for _ in range(3):
        w = int((0.02 + 0.04 * float(torch.rand(1, generator=g))) * sr)
        s = int(torch.randint(0, max(1, len(x) - w), (1,), generator=g))
        y[s: s + w] *= 0.316
    return y


def foreign(x: torch.Tensor, sr: int, g: torch.Generator) -> torch.Tensor:
    """0.4-1.2 s of a sweeping tone over noise, 12-20 dB under the sound (something that does
    not belong: a voice, a tool, a door)."""
    n = len(x)
    dur = int((0.4 + 0.8 * float(torch.rand(1, generator=g))) * sr)
    dur = min(dur, n)
    t = torch.arange(dur) / sr
    f = 300 + 1500 * float(torch.rand(1, generator=g)) + 400 * torch.sin(2 * math.pi * 3 * t)
    burst = torch.sin(2 * math.pi * torch.cumsum(f, 0) / sr) + 0.5 * torch.randn(dur, generator=g)
    burst = burst * torch.hann_window(dur)
    s = int(torch.randint(0, max(1, n - dur), (1,), generator=g))
    y = torch.zeros(n)
    y[s: s + dur] = burst
    level = -12 - 8 * float(torch.rand(1, generator=g))
    return x + y * _rms(x) / _rms(y) * 10 ** (level / 20)


def steady(x: torch.Tensor, sr: int, g: torch.Generator) -> torch.Tensor:
    """The recording's own long-term spectrum as steady noise: the same bands at the same power,
    none of its time structure. Where normal sound is made of events (a shot, a bark, a horn) the
    sounds that do not belong are often steady ones, and window components, which rebuild steady
    sound well, rank them below normal: only the long view hears them (docs/quality.md round 10).
    Steady normal sound (most machines) hardly changes, so this kind then favours no fusion."""
    spec = _stft(x)
    rms_magnitude = spec.abs().pow(2).mean(1, keepdim=True).sqrt().expand_as(spec).contiguous()
    phase = torch.rand(spec.shape, generator=g) * 2 * math.pi
    y = _istft(torch.polar(rms_magnitude, phase), len(x))
    return y * _rms(x) / _rms(y)  # random phases overlap-add incoherently (-6 dB at 4x overlap)


PSEUDO: dict[str, Callable[[torch.Tensor, int, torch.Generator], torch.Tensor]] = {
    "tilt": tilt, "harmonic": harmonic, "band_shift": band_shift, "impulses": impulses, "dropouts": dropouts,
    "foreign": foreign, "steady": steady,
}


def candidates(recipe: dict[str, float], combine: str = "mean") -> dict[str, tuple[dict[str, float], str]]:
    """The fusions tried, each combined as the recipe combines (so a chosen fusion keeps the
    recipe's threshold behaviour: round 10's tail and max candidates alarmed about four times as
    often at the calibrated threshold): the recipe's weights, the long-span or the window view
    leading, the clip view leading, the long view alone, with and without the level; where the
    recipe weighs the neighbours component, also the neighbours leading and the long view with the
    neighbours (not by default: with them, real UrbanSound8K sets lost to the same choice without,
    docs/quality.md round 12)."""
    span, clip = recipe.get("span", 1.0) or 1.0, recipe.get("clip", 1.0) or 1.0
    off = {k: 0.0 for k in recipe}
    out = {
        "recipe": (dict(recipe), combine),
        "span-led": ({**recipe, "span": 3 * span}, combine),
        "window-led": ({**recipe, "span": 0.0}, combine),
        "clip-led": ({**recipe, "clip": 3 * clip}, combine),
        # the long view alone: where normal sound is made of events (a shot, a horn), a window is
        # either the event or the silence around it and window components rank other sounds below
        # normal ones; the span and clip Gaussian see the clip as a whole (docs/quality.md round 9)
        "long-view": ({**off, "span": 1.0, "clip": 1.0}, combine),
        "long-view+level": ({**off, "span": 1.0, "clip": 1.0, "level": 1.0}, combine),
    }
    if neighbours := recipe.get("neighbours", 0.0):
        # a normal class of many kinds of sound: the nearest training spans leading, or with the
        # long view alone
        out["neighbours-led"] = ({**recipe, "neighbours": 3 * neighbours}, combine)
        out["long-view+neighbours"] = ({**off, "span": 1.0, "clip": 1.0, "neighbours": 1.0}, combine)
    return out


def ranked_auc_pauc(normal: np.ndarray, anomalous: np.ndarray, max_fpr: float = MAX_FPR) -> tuple[float, float]:
    """(AUC, pAUC at `max_fpr`, McClish-standardised) of anomalous above normal scores: what
    `sentinel.evaluation.auc_pauc` (sklearn) gives, ~50x faster, for the bootstrap below (~10^4
    calls per bundle); evaluation keeps sklearn's checks of its labels."""
    s = np.r_[normal, anomalous]
    y = np.r_[np.zeros(len(normal)), np.ones(len(anomalous))]
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # the last row of each distinct score
    tps = np.cumsum(y)[last]
    fps = last + 1 - tps
    tpr, fpr = np.r_[0.0, tps / tps[-1]], np.r_[0.0, fps / fps[-1]]
    stop = int(np.searchsorted(fpr, max_fpr, "right"))
    at = float(np.interp(max_fpr, fpr[stop - 1:stop + 1], tpr[stop - 1:stop + 1]))
    part = float(np.trapezoid(np.r_[tpr[:stop], at], np.r_[fpr[:stop], max_fpr]))
    low, high = 0.5 * max_fpr ** 2, max_fpr
    return float(np.trapezoid(tpr, fpr)), 0.5 * (1 + (part - low) / (high - low))


def _ranking(base: np.ndarray, altered: list[np.ndarray], copies: int, idx: np.ndarray) -> float:
    """Mean of AUC and pAUC over the kinds, of the held-out recordings `idx` (with repeats: a
    bootstrap resample) against their own altered copies."""
    alt_idx = (idx[:, None] * copies + np.arange(copies)).ravel()
    return float(np.mean([sum(ranked_auc_pauc(base[idx], a[alt_idx])) / 2 for a in altered]))


def decide(files: dict[str, tuple[np.ndarray, list[np.ndarray]]], copies: int, seed: int = 0
           ) -> tuple[str, dict[str, float], dict[str, float]]:
    """(the candidate kept, each candidate's ranking, the share of bootstrap resamples in which each
    candidate that ranks above the recipe still does) from every candidate's file scores: the
    held-out recordings' [N] and, per pseudo-anomaly kind, their altered copies' [N * copies],
    recording by recording."""
    n = len(files["recipe"][0])
    everyone = np.arange(n)
    results = {name: _ranking(b, a, copies, everyone) for name, (b, a) in files.items()}
    contenders = [k for k in files if k != "recipe" and results[k] > results["recipe"]]
    if not contenders:  # nothing to test: the recipe stays without a bootstrap
        return "recipe", results, {}
    rng = np.random.default_rng(seed)
    resamples = [rng.integers(0, n, n) for _ in range(BOOTSTRAPS)]
    recipe = [_ranking(*files["recipe"], copies, idx) for idx in resamples]
    wins = {k: float(np.mean([_ranking(*files[k], copies, idx) > r for idx, r in zip(resamples, recipe, strict=True)]))
            for k in contenders}
    sure = [k for k, w in wins.items() if w >= CONFIDENCE]
    return (max(sure, key=lambda k: results[k]) if sure else "recipe"), results, wins


def choose_fusion(scorer: DiffusionScorer, holdout: list[torch.Tensor], seed: int = 0, copies: int = 2
                  ) -> tuple[dict | None, dict[str, float]]:
    """(the fusion to keep, with every candidate's score; each candidate's mean of AUC and pAUC)
    from held-out normal waveforms and `copies` pseudo-anomalous versions of each per kind.

    The pseudo-anomalies are small changes and on sound made of events they rank near 0.5 for
    every candidate, a few hundredths apart (docs/quality.md round 11): the best candidate by a
    hair is noise. So a candidate replaces the recipe only where it ranks better than the recipe
    in CONFIDENCE of BOOTSTRAPS resamples of the held-out recordings (each with its own altered
    copies: the comparison is paired); of those, the best ranked is kept. None when there is too
    little held-out audio to choose (the recipe's fusion stays)."""
    sr = scorer.extractor.spec.sample_rate
    g = torch.Generator().manual_seed(seed)
    waves = [w for w in holdout if w.numel() >= scorer.extractor.spec.window_samples]
    if len(waves) < MIN_RECORDINGS:
        return None, {}
    normal = [scorer.score_recording(w).components for w in waves]
    altered = {kind: [scorer.score_recording(f(w, sr, g).float()).components for w in waves for _ in range(copies)]
               for kind, f in PSEUDO.items()}
    post: PostProcessor = scorer.post
    tried = candidates(scorer.config.weights, scorer.config.combine)
    files: dict[str, tuple[np.ndarray, list[np.ndarray]]] = {}
    for name, (weights, combine) in tried.items():
        def file_scores(comps_list, weights=weights, combine=combine):
            return np.array([post.file_score(post.window_scores(c, weights, combine=combine)) for c in comps_list])

        try:
            files[name] = (file_scores(normal), [file_scores(c) for c in altered.values()])
        except ValueError:  # e.g. tail on a bundle without held-out quantiles
            continue
    if "recipe" not in files:
        return None, {}
    best, results, wins = decide(files, copies, seed)
    chosen: dict = {"name": best, "pseudo_score": {k: round(v, 4) for k, v in results.items()},
                    "wins": {k: round(v, 3) for k, v in wins.items()}}
    if best != "recipe":  # the recipe's own weights stay the config's (a score-time override still applies)
        chosen["weights"], chosen["combine"] = tried[best]
    return chosen, results
