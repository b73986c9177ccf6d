"""Reading images and ground-truth masks: RGB float tensors at the model's size."""

from __future__ import annotations

import glob
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from sentinel.errors import DataError, SentinelError

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


class ImageError(SentinelError):
    """An image file cannot be read."""


def find_images(paths: Iterable[str | Path]) -> list[Path]:
    """Expand files, folders (recursively) and globs into a sorted list of image files."""
    found: set[Path] = set()
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found.update(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
        elif p.is_file():
            found.add(p)
        elif glob.has_magic(str(p)):
            found.update(Path(f) for f in glob.glob(str(p), recursive=True) if Path(f).is_file())
        else:
            raise DataError(f"{p}: no such file or folder")
    return sorted(found)


def load_image(path: str | Path, size: int) -> torch.Tensor:
    """[3, size, size] in [0, 1]; grey and RGBA images become RGB."""
    try:
        with Image.open(path) as im:
            rgb = im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise ImageError(f"{path}: not a readable image ({str(e).splitlines()[0] or type(e).__name__})") from None
    return torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


def load_mask(path: str | Path, size: int) -> torch.Tensor:
    """[size, size] bool: True where the ground truth marks a defect."""
    try:
        with Image.open(path) as im:
            grey = im.convert("L").resize((size, size), Image.Resampling.NEAREST)
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise ImageError(f"{path}: not a readable mask ({str(e).splitlines()[0] or type(e).__name__})") from None
    return torch.from_numpy(np.asarray(grey) > 127)


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
