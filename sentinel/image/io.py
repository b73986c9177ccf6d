"""Reading images and ground-truth masks as float tensors, in the layout an ImageSpec asks for:
square (resized to size x size) or native (own size and aspect ratio, longer side capped)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from sentinel.audio import find_files
from sentinel.errors import SentinelError
from sentinel.features.image_spec import ImageSpec

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


class ImageError(SentinelError):
    """An image file cannot be read."""


def find_images(paths: Iterable[str | Path]) -> list[Path]:
    """Image files under files, folders (recursively) and glob patterns."""
    return find_files(paths, IMAGE_EXTENSIONS)


def model_shape(spec: ImageSpec, width: int, height: int) -> tuple[int, int]:
    """(height, width) an image of this size is read at."""
    if spec.layout == "square":
        return spec.size, spec.size
    longer = max(width, height)
    if longer <= spec.max_side:
        return height, width
    scale = spec.max_side / longer
    return max(1, round(height * scale)), max(1, round(width * scale))


def _open(path: str | Path, mode: str, spec: ImageSpec, resample: Image.Resampling, what: str,
          shape: tuple[int, int] | None = None) -> np.ndarray:
    try:
        with Image.open(path) as im:
            h, w = shape or model_shape(spec, *im.size)
            im = im.convert(mode)
            return np.asarray(im if im.size == (w, h) else im.resize((w, h), resample))
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise ImageError(f"{path}: not a readable {what} ({str(e).splitlines()[0] or type(e).__name__})") from None


# What spec.standardise == "image" brings every image to: a mid grey and a contrast that keeps
# nearly all of a normal image within [0, 1], so overlays still draw it.
STANDARD_MEAN, STANDARD_STD = 0.5, 0.15


def load_image(path: str | Path, spec: ImageSpec) -> torch.Tensor:
    """[C, H, W], 0-1 for the pixel range: C = 3 (grey and RGBA images become RGB) or 1 for a grey
    spec; with spec.standardise == "image", each channel brought to STANDARD_MEAN and STANDARD_STD
    over the whole image (before any crop, so training crops and scored images agree)."""
    if spec.colour == "grey":
        image = torch.from_numpy(_open(path, "L", spec, Image.Resampling.BILINEAR, "image").astype(np.float32)
                                 / 255.0)[None]
    else:
        rgb = _open(path, "RGB", spec, Image.Resampling.BILINEAR, "image")
        image = torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1).contiguous()
    if spec.standardise == "image":
        mean = image.mean(dim=(1, 2), keepdim=True)
        std = image.std(dim=(1, 2), keepdim=True).clamp_min(1e-3)
        image = STANDARD_MEAN + STANDARD_STD * (image - mean) / std
    return image


def load_mask(path: str | Path, shape: tuple[int, int]) -> torch.Tensor:
    """[H, W] bool at the (height, width) of the map it is compared with: True where the ground
    truth marks a defect."""
    return torch.from_numpy(_open(path, "L", ImageSpec(), Image.Resampling.NEAREST, "mask", shape) > 127)


def load_images(paths: list[Path], spec: ImageSpec, on_error=None) -> tuple[list[Path], list[torch.Tensor]]:
    """The readable images among `paths`, each [C, H, W] (all one shape in the square layout);
    the others are reported through on_error."""
    kept, tensors = [], []
    for p in paths:
        try:
            tensors.append(load_image(p, spec))
        except ImageError as e:
            if on_error:
                on_error(str(e))
            continue
        kept.append(p)
    return kept, tensors
