"""ImageSpec: every parameter that turns an image into the model's input, hashed into bundles."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import ConfigDict, Field

# Keys added after bundle format 2 was fixed, with the behaviour every earlier bundle had: left out
# of the digest at that value, so a bundle written before they existed keeps its hash.
_LATER_KEYS = {"layout": "square", "colour": "rgb", "max_side": 1024, "standardise": "dataset"}


@dataclass(frozen=True)
class ImageSpec:
    """How an image becomes a tensor. A bundle stores it; an edited one refuses to load."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    size: Annotated[
        int, Field(ge=16, description="square: images are resized to size x size (a multiple of 16). native: "
                   "the side of the random crops the denoiser trains on.")
    ] = 128
    representation: Annotated[
        Literal["rgb", "wavelet"],
        Field(description="Model input: 'rgb' (the colour channels as they are) or 'wavelet' (one-level 2-D DWT "
              "of each channel, four sub-bands per channel at half size: four times cheaper per pass)."),
    ] = "wavelet"
    wavelet: Annotated[str, Field(description="Wavelet name for the DWT (pywavelets names).")] = "haar"
    layout: Annotated[
        Literal["square", "native"],
        Field(description="'square': every image resized to size x size (objects, textures shot one way). "
              "'native': images kept at their own size and aspect ratio, so defects a few pixels across "
              "survive; the map comes back at the image's own size."),
    ] = "square"
    colour: Annotated[
        Literal["rgb", "grey"],
        Field(description="'rgb' (3 channels; grey images are repeated) or 'grey' (1 channel: inspection "
              "cameras that see no colour, at a third of the input)."),
    ] = "rgb"
    standardise: Annotated[
        Literal["dataset", "image"],
        Field(description="'dataset': pixel values as they are (one normalisation from the training images). "
              "'image': each image brought to the same mean and contrast when read, so that exposure and "
              "lighting that differ from shot to shot are not anomalies (inspection cameras)."),
    ] = "dataset"
    max_side: Annotated[
        int, Field(ge=32, description="native: an image whose longer side exceeds this is scaled down to it "
                   "(keeps time and memory per image bounded).")
    ] = 1024

    def __post_init__(self) -> None:
        if self.size % 16:
            raise ValueError(f"size must be a multiple of 16 (got {self.size})")

    @property
    def colour_channels(self) -> int:
        return 1 if self.colour == "grey" else 3

    @property
    def channels(self) -> int:
        return self.colour_channels * (4 if self.representation == "wavelet" else 1)

    @property
    def input_stride(self) -> int:
        """Image pixels per model-input pixel."""
        return 2 if self.representation == "wavelet" else 1

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The shape the denoiser trains on (native: a training crop's)."""
        side = self.size // self.input_stride
        return (self.channels, side, side)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        d = {k: v for k, v in self.to_dict().items() if _LATER_KEYS.get(k, object()) != v}
        blob = json.dumps(d, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
