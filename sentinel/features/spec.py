"""FeatureSpec: every parameter that turns audio into the model's input, hashed into bundles."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import ConfigDict, Field

Representation = Literal["mel", "wavelet", "mel+wavelet"]
LEGACY_FEATURES = {"remove_level": False}
"""Settings that bundles written before the key existed implicitly have."""


@dataclass(frozen=True)
class FeatureSpec:
    """How a window of audio becomes a tensor. A bundle stores it; a mismatch refuses to load."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    sample_rate: Annotated[int, Field(gt=0, description="Model sample rate in Hz; input is resampled.")] = 16000
    n_fft: Annotated[int, Field(gt=0, description="FFT size of the mel spectrogram.")] = 1024
    hop_length: Annotated[int, Field(gt=0, description="Hop between mel frames, in samples.")] = 256
    n_mels: Annotated[int, Field(gt=0, description="Number of mel bins (a multiple of 8).")] = 128
    f_min: Annotated[float, Field(ge=0, description="Lowest mel filter frequency, Hz.")] = 0.0
    f_max: Annotated[
        float | None, Field(description="Highest mel filter frequency, Hz; null = sample_rate / 2.")
    ] = None
    window_frames: Annotated[
        int, Field(gt=0, description="Mel frames per scored window (a multiple of 8); 64 ≈ 1 s at 16 kHz.")
    ] = 64
    representation: Annotated[
        Representation,
        Field(
            description="Model input: 'mel' (1 x mels x frames), 'wavelet' (2-D DWT of the log-mel as "
            "4 sub-band channels at half size), or 'mel+wavelet' (log-mel plus the 3 detail bands, "
            "upsampled to full size)."
        ),
    ] = "wavelet"
    wavelet: Annotated[str, Field(description="Wavelet name for the DWT (pywavelets names).")] = "haar"
    remove_level: Annotated[
        bool,
        Field(
            description="Subtract each window's mean log-mel (its level in dB) before the model sees it, so "
            "that microphone gain does not hide changes of spectral shape; the level is still scored, by "
            "the 'level' component."
        ),
    ] = True

    def __post_init__(self) -> None:
        for name in ("n_mels", "window_frames"):
            if getattr(self, name) % 8:
                raise ValueError(f"{name} must be a multiple of 8 (got {getattr(self, name)})")

    @property
    def window_samples(self) -> int:
        """Samples in one window: frame i of a window is centred on sample i * hop."""
        return self.window_frames * self.hop_length

    @property
    def window_seconds(self) -> float:
        return self.window_samples / self.sample_rate

    @property
    def channels(self) -> int:
        return {"mel": 1, "wavelet": 4, "mel+wavelet": 4}[self.representation]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height = frequency, width = time) of one model input."""
        if self.representation == "wavelet":
            return (4, self.n_mels // 2, self.window_frames // 2)
        return (self.channels, self.n_mels, self.window_frames)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        """Stable short hash of all parameters (order-independent JSON)."""
        # Keys added after the first bundles were written are hashed only where they differ from the
        # behaviour before they existed, so that those bundles keep their hash and still load.
        d = {k: v for k, v in self.to_dict().items() if LEGACY_FEATURES.get(k, object()) != v}
        blob = json.dumps(d, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
