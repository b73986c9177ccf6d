"""ImageSpec: every parameter that turns an image into the model's input, hashed into bundles."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import ConfigDict, Field


@dataclass(frozen=True)
class ImageSpec:
    """How an image becomes a tensor. A bundle stores it; an edited one refuses to load."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    size: Annotated[
        int, Field(ge=16, description="Images are resized to size x size RGB (a multiple of 16).")
    ] = 128
    representation: Annotated[
        Literal["rgb", "wavelet"],
        Field(description="Model input: 'rgb' (3 x size x size) or 'wavelet' (one-level 2-D DWT of each "
              "colour channel, 12 sub-band channels at half size: four times cheaper per pass)."),
    ] = "wavelet"
    wavelet: Annotated[str, Field(description="Wavelet name for the DWT (pywavelets names).")] = "haar"

    def __post_init__(self) -> None:
        if self.size % 16:
            raise ValueError(f"size must be a multiple of 16 (got {self.size})")

    @property
    def channels(self) -> int:
        return 12 if self.representation == "wavelet" else 3

    @property
    def input_shape(self) -> tuple[int, int, int]:
        half = self.size // 2
        return (12, half, half) if self.representation == "wavelet" else (3, self.size, self.size)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
