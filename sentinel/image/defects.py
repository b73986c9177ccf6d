"""Synthetic defects on real images, and an MVTec AD-layout set built from them.

Used by the tests (on generated textures) and by benchmarks/textures.py (on scikit-image's CC0
textures). Each defect returns the damaged image and its ground-truth mask.

Two families: the coloured ones (a tinted stain, a pure black or white scratch, a black hole with
a bright rim), easy because no normal grey texture has such pixels; and the grey-level ones, which
keep R = G = B and stay within the texture's own grey range: a soft darker or lighter stain, a
thin scratch only 50-90 grey levels off, a dark hole, a blurred patch, and a patch of another
region or another texture. Those are what real surface defects look like, and what a map that
only measures "hard to rebuild" misses: several of them *remove* texture.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

Defect = Callable[[np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]


def _disk(h: int, w: int, cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2


def _blob(h: int, w: int, rng: np.random.Generator, r_lo: float, r_hi: float) -> tuple[np.ndarray, np.ndarray]:
    """(soft weight 0-1 that is 1 in the middle, mask where it is over a half) of a round blob."""
    cy, cx = rng.uniform(0.25, 0.75) * h, rng.uniform(0.25, 0.75) * w
    r = rng.uniform(r_lo, r_hi) * min(h, w)
    yy, xx = np.mgrid[:h, :w]
    d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) / r
    weight = np.clip(1.5 - d, 0, 1)  # flat inside 0.5 r, fading to nothing at 1.5 r
    return weight, weight >= 0.5


def _line(h: int, w: int, rng: np.random.Generator, width: int) -> np.ndarray:
    mask = np.zeros((h, w), bool)
    y0, x0 = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
    angle, length = rng.uniform(0, np.pi), rng.uniform(0.3, 0.6) * min(h, w)
    lo, hi = width // 2, width - width // 2
    for t in np.linspace(-length / 2, length / 2, int(length * 2)):
        y, x = int(y0 + t * np.sin(angle)), int(x0 + t * np.cos(angle))
        mask[max(0, y - lo) : y + hi, max(0, x - lo) : x + hi] = True
    return mask


def scratch(img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A thin pure white or black line across part of the image."""
    mask = _line(*img.shape[:2], rng, width=3)
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
    """A black hole with a lighter rim."""
    h, w = img.shape[:2]
    cy, cx, r = rng.uniform(0.25, 0.75) * h, rng.uniform(0.25, 0.75) * w, rng.uniform(0.05, 0.1) * min(h, w)
    inner, outer = _disk(h, w, cy, cx, r), _disk(h, w, cy, cx, r * 1.3)
    out = img.copy()
    out[outer & ~inner] = np.clip(out[outer & ~inner] * 1.4 + 0.1, 0, 1)
    out[inner] = 0.05
    return out, outer


# -- grey-level defects: R = G = B kept, values inside the texture's own range ---------------------

def grey_stain(img: np.ndarray, rng: np.random.Generator, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """A soft blob `shift` lighter (> 0) or darker (< 0), in 0-1 grey (0.1 = 25 grey levels)."""
    weight, mask = _blob(*img.shape[:2], rng, 0.08, 0.15)
    return np.clip(img + shift * weight[..., None], 0, 1), mask


def faint_scratch(img: np.ndarray, rng: np.random.Generator, levels: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A 2-px line `levels` grey levels (of 255) lighter or darker than the texture under it."""
    mask = _line(*img.shape[:2], rng, width=2)
    off = rng.uniform(*levels) / 255.0 * (1 if rng.random() < 0.5 else -1)
    out = img.copy()
    out[mask] = np.clip(out[mask] + off, 0, 1)
    return out, mask


def dark_hole(img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A soft-edged hole at the darkest grey the texture itself has (its 2nd percentile)."""
    h, w = img.shape[:2]
    floor = float(np.percentile(img, 2))
    cy, cx, r = rng.uniform(0.25, 0.75) * h, rng.uniform(0.25, 0.75) * w, rng.uniform(0.04, 0.08) * min(h, w)
    yy, xx = np.mgrid[:h, :w]
    d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) / r
    alpha = np.clip(1.5 - d, 0, 1)[..., None]
    return (1 - alpha) * img + alpha * floor, d <= 1.2


def blur(img: np.ndarray, rng: np.random.Generator, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """A round patch blurred (gaussian, `sigma` px): texture removed, mean grey unchanged."""
    weight, mask = _blob(*img.shape[:2], rng, 0.1, 0.18)
    smooth = gaussian_filter(img, sigma=(sigma, sigma, 0))
    a = weight[..., None]
    return (1 - a) * img + a * smooth, mask


def _paste(img: np.ndarray, patch_source: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    h, w = img.shape[:2]
    s = int(rng.uniform(0.2, 0.3) * min(h, w))
    y, x = int(rng.integers(h // 8, h - s - h // 8)), int(rng.integers(w // 8, w - s - w // 8))
    sy, sx = int(rng.integers(0, patch_source.shape[0] - s)), int(rng.integers(0, patch_source.shape[1] - s))
    patch = np.rot90(patch_source[sy : sy + s, sx : sx + s], k=int(rng.integers(1, 4)))
    out = img.copy()
    out[y : y + s, x : x + s] = patch
    mask = np.zeros((h, w), bool)
    mask[y : y + s, x : x + s] = True
    return out, mask


def swap_region(img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A square from elsewhere in the same image, rotated and scaled 2x down: the texture's own
    pixels at the wrong scale and orientation."""
    small = img[::2, ::2]
    return _paste(img, np.concatenate([small, small], axis=0), rng)


def swap_texture(img: np.ndarray, rng: np.random.Generator, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A square of another texture, its grey levels matched to this one's mean and spread."""
    g = other
    matched = (g - g.mean()) / max(g.std(), 1e-6) * img.std() + img.mean()
    return _paste(img, np.clip(matched, 0, 1), rng)


COLOUR_DEFECTS: dict[str, Defect] = {"scratch": scratch, "stain": stain, "hole": hole}
GREY_DEFECTS: dict[str, Defect] = {
    "stain_dark_weak": partial(grey_stain, shift=-0.12),
    "stain_dark": partial(grey_stain, shift=-0.25),
    "stain_light_weak": partial(grey_stain, shift=0.12),
    "stain_light": partial(grey_stain, shift=0.25),
    "scratch_faint": partial(faint_scratch, levels=(50, 90)),
    "hole_dark": dark_hole,
    "blur_weak": partial(blur, sigma=1.5),
    "blur": partial(blur, sigma=3.0),
    "swap_region": swap_region,
}
DEFECTS: dict[str, Defect] = COLOUR_DEFECTS
"""The default set of build_mvtec_category (the tests' small category)."""


def _rgb01(texture: np.ndarray) -> np.ndarray:
    img = texture.astype(np.float64)
    if img.max() > 1.5:
        img = img / 255.0
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return img


def _save(arr: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if arr.dtype == bool:
        Image.fromarray(arr.astype(np.uint8) * 255).save(path)
    else:
        Image.fromarray((np.clip(arr, 0, 1) * 255).round().astype(np.uint8)).save(path)


def _crops(img: np.ndarray, n: int, shapes: list[tuple[int, int]], rng: np.random.Generator) -> list[np.ndarray]:
    h, w = img.shape[:2]
    out = []
    for i in range(n):
        ch, cw = shapes[i % len(shapes)]
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        out.append(img[y : y + ch, x : x + cw])
    return out


def build_mvtec_category(texture: np.ndarray, root: str | Path, crop: int = 128, n_train: int = 60,
                         n_test_good: int = 20, n_per_defect: int = 10, seed: int = 0,
                         defects: dict[str, Defect] | None = None, other: np.ndarray | None = None,
                         shapes: list[tuple[int, int]] | None = None, grey: bool = False) -> Path:
    """Write an MVTec AD-layout category from one texture image ([H, W] grey or [H, W, 3], values
    0-1 or 0-255): training crops from the top half, test crops (good and with each defect) from
    the bottom half, so no test pixel was seen in training. `other` (another texture) adds a
    `swap_texture` defect. Training crops depend only on the texture, sizes and seed, not on the
    defects, so one trained bundle serves every defect set. Crops are crop x crop, or cycle through
    `shapes` ((height, width) each: a set of many sizes and aspect ratios); `grey` saves 1-channel
    images (the grey-level defects only, then)."""
    rng = np.random.default_rng(seed)
    img = _rgb01(texture)
    half = img.shape[0] // 2
    top, bottom = img[:half], img[half:]
    root = Path(root)
    shapes = shapes or [(crop, crop)]

    def save(arr: np.ndarray, path: Path) -> None:
        _save(arr[..., 0] if grey else arr, path)

    for i, c in enumerate(_crops(top, n_train, shapes, rng)):
        save(c, root / "train" / "good" / f"{i:03d}.png")
    for i, c in enumerate(_crops(bottom, n_test_good, shapes, rng)):
        save(c, root / "test" / "good" / f"{i:03d}.png")
    chosen = dict(DEFECTS if defects is None else defects)
    if other is not None:
        chosen["swap_texture"] = partial(swap_texture, other=_rgb01(other))
    for name, defect in chosen.items():
        for i, c in enumerate(_crops(bottom, n_per_defect, shapes, rng)):
            damaged, mask = defect(c, rng)
            save(damaged, root / "test" / name / f"{i:03d}.png")
            _save(mask, root / "ground_truth" / name / f"{i:03d}_mask.png")
    return root
