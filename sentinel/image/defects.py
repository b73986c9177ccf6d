"""Synthetic defects on real images, and an MVTec AD-layout set built from them.

Used by the tests (on generated textures) and by benchmarks/textures.py (on scikit-image's CC0
textures). Each defect returns the damaged image and its ground-truth mask.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

Defect = Callable[[np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]


def _disk(h: int, w: int, cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2


def scratch(img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A thin bright or dark line across part of the image."""
    h, w = img.shape[:2]
    mask = np.zeros((h, w), bool)
    y0, x0 = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
    angle, length = rng.uniform(0, np.pi), rng.uniform(0.3, 0.6) * min(h, w)
    for t in np.linspace(-length / 2, length / 2, int(length * 2)):
        y, x = int(y0 + t * np.sin(angle)), int(x0 + t * np.cos(angle))
        mask[max(0, y - 1) : y + 2, max(0, x - 1) : x + 2] = True
    out = img.copy()
    out[mask] = 1.0 if rng.random() < 0.5 else 0.0
    return out, mask


def stain(img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A soft coloured blob that tints the texture under it."""
    h, w = img.shape[:2]
    cy, cx, r = rng.uniform(0.25, 0.75) * h, rng.uniform(0.25, 0.75) * w, rng.uniform(0.08, 0.15) * min(h, w)
    yy, xx = np.mgrid[:h, :w]
    d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) / r
    alpha = np.clip(1.2 - d, 0, 1)[..., None] * 0.7
    colour = np.array([rng.uniform(0.4, 0.7), rng.uniform(0.15, 0.35), rng.uniform(0.0, 0.15)])
    return (1 - alpha) * img + alpha * colour, d <= 1.0


def hole(img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A dark hole with a lighter rim."""
    h, w = img.shape[:2]
    cy, cx, r = rng.uniform(0.25, 0.75) * h, rng.uniform(0.25, 0.75) * w, rng.uniform(0.05, 0.1) * min(h, w)
    inner, outer = _disk(h, w, cy, cx, r), _disk(h, w, cy, cx, r * 1.3)
    out = img.copy()
    out[outer & ~inner] = np.clip(out[outer & ~inner] * 1.4 + 0.1, 0, 1)
    out[inner] = 0.05
    return out, outer


DEFECTS: dict[str, Defect] = {"scratch": scratch, "stain": stain, "hole": hole}


def _save(arr: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if arr.dtype == bool:
        Image.fromarray(arr.astype(np.uint8) * 255).save(path)
    else:
        Image.fromarray((np.clip(arr, 0, 1) * 255).round().astype(np.uint8)).save(path)


def _crops(img: np.ndarray, n: int, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    h, w = img.shape[:2]
    out = []
    for _ in range(n):
        y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        out.append(img[y : y + size, x : x + size])
    return out


def build_mvtec_category(texture: np.ndarray, root: str | Path, crop: int = 128, n_train: int = 60,
                         n_test_good: int = 20, n_per_defect: int = 10, seed: int = 0) -> Path:
    """Write an MVTec AD-layout category from one texture image ([H, W] grey or [H, W, 3], values
    0-1 or 0-255): training crops from the top half, test crops (good and with each defect) from
    the bottom half, so no test pixel was seen in training."""
    rng = np.random.default_rng(seed)
    img = texture.astype(np.float64)
    if img.max() > 1.5:
        img = img / 255.0
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    half = img.shape[0] // 2
    top, bottom = img[:half], img[half:]
    root = Path(root)
    for i, c in enumerate(_crops(top, n_train, crop, rng)):
        _save(c, root / "train" / "good" / f"{i:03d}.png")
    for i, c in enumerate(_crops(bottom, n_test_good, crop, rng)):
        _save(c, root / "test" / "good" / f"{i:03d}.png")
    for name, defect in DEFECTS.items():
        for i, c in enumerate(_crops(bottom, n_per_defect, crop, rng)):
            damaged, mask = defect(c, rng)
            _save(damaged, root / "test" / name / f"{i:03d}.png")
            _save(mask, root / "ground_truth" / name / f"{i:03d}_mask.png")
    return root
