"""Scoring: the diffusion scorer and its calibration on normal audio."""

from sentinel.scoring.calibration import Calibration, calibrate
from sentinel.scoring.scorer import COMPONENTS, DiffusionScorer, NormalStats, ScoreResult, ScoringConfig

__all__ = ["COMPONENTS", "Calibration", "DiffusionScorer", "NormalStats", "ScoreResult", "ScoringConfig", "calibrate"]
