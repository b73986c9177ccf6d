"""Reading images and ground-truth masks: RGB float tensors at the model's size."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from sentinel.audio import find_files
from sentinel.errors import SentinelError

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


class ImageError(SentinelError):
    """An image file cannot be read."""


def find_images(paths: Iterable[str | Path]) -> list[Path]:
    """Image files under files, folders (recursively) and glob patterns."""
    return find_files(paths, IMAGE_EXTENSIONS)


def _open(path: str | Path, mode: str, size: int, resample: Image.Resampling, what: str) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert(mode).resize((size, size), resample))
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise ImageError(f"{path}: not a readable {what} ({str(e).splitlines()[0] or type(e).__name__})") from None


def load_image(path: str | Path, size: int) -> torch.Tensor:
    """[3, size, size] in [0, 1]; grey and RGBA images become RGB."""
    rgb = _open(path, "RGB", size, Image.Resampling.BILINEAR, "image")
    return torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1).contiguous()


def load_mask(path: str | Path, size: int) -> torch.Tensor:
    """[size, size] bool: True where the ground truth marks a defect."""
    return torch.from_numpy(_open(path, "L", size, Image.Resampling.NEAREST, "mask") > 127)


def load_images(paths: list[Path], size: int, on_error=None) -> tuple[list[Path], torch.Tensor]:
    """The readable images among `paths` as one [N, 3, size, size] tensor; the others are reported."""
    kept, tensors = [], []
    for p in paths:
        try:
            tensors.append(load_image(p, size))
        except ImageError as e:
            if on_error:
                on_error(str(e))
            continue
        kept.append(p)
    return kept, (torch.stack(tensors) if tensors else torch.zeros(0, 3, size, size))
