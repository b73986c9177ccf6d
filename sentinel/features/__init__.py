"""Features: audio windows -> log-mel / wavelet tensors for the denoiser."""

from sentinel.features.extractor import FeatureExtractor
from sentinel.features.mel import LogMel
from sentinel.features.spec import FeatureSpec

__all__ = ["FeatureExtractor", "FeatureSpec", "LogMel"]
