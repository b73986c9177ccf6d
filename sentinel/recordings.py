"""Scoring recordings from disk, the loop behind `sentinel score`, `calibrate` and `eval`: find
the files, load them at the bundle's rate, score each in windows, and let the bundle's
post-processor say what each recording's score and verdict are."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sentinel.audio import find_audio, windowable
from sentinel.errors import DataError
from sentinel.scoring.scorer import WindowScorer


@dataclass
class ScoredFile:
    path: Path
    starts_s: list[float]
    window_s: float
    scores: np.ndarray
    """[n] window scores."""
    file_score: float
    """What ranks recordings (the post-processor's file aggregate: AUC, reports)."""
    flagged: bool | None
    """Any window above the threshold (what the daemon alerts on); None when uncalibrated."""

    @property
    def peak(self) -> float:
        return float(self.scores.max())


def score_files(scorer: WindowScorer, paths: Sequence[str | Path], must_find: bool = True, tile_short: bool = False,
                warn: Callable[[str], None] = lambda m: None) -> list[ScoredFile]:
    """Every readable recording under `paths`, scored; unreadable or too short ones are `warn`ed
    about and skipped. `tile_short` repeats a clip shorter than a window to fill one (dataset
    clips: silence would look anomalous)."""
    spec = scorer.extractor.spec
    files = find_audio(paths)
    if not files and must_find:
        raise DataError(f"{', '.join(map(str, paths))}: no audio files found")
    out = []
    for f, wave in windowable(files, spec.sample_rate, spec.window_samples, lambda m: warn(f"skipped {m}"),
                              tile_short):
        res = scorer.score_recording(wave)
        post = scorer.post
        out.append(ScoredFile(f, res.starts_s, res.window_s, res.scores.numpy(), post.file_score(res.scores),
                              post.flagged(res.scores)))
    return out
