"""Scoring: the diffusion scorer, its post-processor (score -> verdict) and calibration."""

from sentinel.scoring.calibration import Calibration, calibrate
from sentinel.scoring.config import COMPONENTS, ScoringConfig
from sentinel.scoring.postprocess import PostProcessor
from sentinel.scoring.scorer import DiffusionScorer, ScoreResult
from sentinel.scoring.stats import NormalStats

__all__ = ["COMPONENTS", "Calibration", "DiffusionScorer", "NormalStats", "PostProcessor", "ScoreResult",
           "ScoringConfig", "calibrate"]
