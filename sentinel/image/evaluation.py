"""How image bundles (and the references in benchmarks/textures.py) are judged on an MVTec AD-layout
set: image AUROC and pAUC, pixel AUROC, and PRO (per-region overlap, as MVTec AD reports it),
overall and per defect type."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.ndimage import label
from sklearn.metrics import roc_auc_score

from sentinel.image.io import ImageError, load_mask
from sentinel.image.mvtec import GOOD, TestImage


def pro_score(maps: Sequence[np.ndarray], masks: Sequence[np.ndarray], max_fpr: float = 0.3,
              points: int = 300) -> float:
    """Area under the per-region-overlap curve up to `max_fpr`, divided by `max_fpr` (1 = perfect).

    Each connected defect region counts once whatever its size (a thin scratch weighs as much as a
    large stain, unlike pixel AUROC); the false-positive rate is over every defect-free pixel of
    every image. Thresholds are taken where the false-positive rate crosses `points` even steps."""
    normal = np.concatenate([m[~k].ravel() for m, k in zip(maps, masks, strict=True)])
    regions = []
    for m, k in zip(maps, masks, strict=True):
        labelled, n = label(k)
        regions += [np.sort(m[labelled == i]) for i in range(1, n + 1)]
    if not regions or normal.size == 0:
        raise ValueError("PRO needs at least one defect region and some defect-free pixels")
    fprs = np.linspace(0.0, max_fpr, points + 1)
    thresholds = np.quantile(normal, 1.0 - fprs)
    pro = np.zeros_like(fprs)
    for r in regions:
        pro += 1.0 - np.searchsorted(r, thresholds, side="right") / r.size
    pro /= len(regions)
    normal_sorted = np.sort(normal)
    real_fpr = 1.0 - np.searchsorted(normal_sorted, thresholds, side="right") / normal.size
    return float(np.trapezoid(pro, real_fpr) / max_fpr)


def auc_pauc(y: np.ndarray, s: np.ndarray, max_fpr: float = 0.1) -> dict[str, float]:
    return {"auc": float(roc_auc_score(y, s)), "pauc": float(roc_auc_score(y, s, max_fpr=max_fpr))}


def _pixel(maps: list[np.ndarray], masks: list[np.ndarray]) -> dict[str, float]:
    lab = np.concatenate([k.ravel() for k in masks])
    val = np.concatenate([m.ravel() for m in maps])
    if not 0 < lab.sum() < lab.size:
        return {}
    return {"pixel_auc": float(roc_auc_score(lab, val)), "pro": pro_score(maps, masks)}


def evaluate(items: Sequence[TestImage], scores: np.ndarray, maps: Sequence[np.ndarray] | None,
             on_error: Callable[[str], None] | None = None) -> dict:
    """Image AUROC/pAUC over all items, and per defect type (its images against the good ones);
    with maps (one [H, W] per item, same order, at any size: each mask is read at its map's size),
    pixel AUROC and PRO too, over the images that have a ground-truth mask (good images count as all
    background)."""
    y = np.array([t.anomalous for t in items], dtype=int)
    if y.min() == y.max():
        raise ValueError("evaluation needs at least one normal and one anomalous image")
    out: dict = {**auc_pauc(y, scores), "n_normal": int((y == 0).sum()), "n_anomalous": int(y.sum()),
                 "per_class": {}, "pixel_auc": None, "pro": None}
    masks: list[np.ndarray | None] = [None] * len(items)
    if maps is not None:
        for i, t in enumerate(items):
            if t.anomalous and t.mask is None:
                continue
            try:
                shape = np.shape(maps[i])
                masks[i] = load_mask(t.mask, shape).numpy() if t.mask else np.zeros(shape, bool)
            except ImageError as e:
                if on_error:
                    on_error(f"skipped mask {e}")
        have = [i for i, k in enumerate(masks) if k is not None]
        out.update(_pixel([np.asarray(maps[i]) for i in have], [masks[i] for i in have]))
    defects = sorted({t.defect for t in items} - {GOOD})
    for defect in defects:
        keep = np.array([t.defect in (GOOD, defect) for t in items])
        row = {**auc_pauc(y[keep], scores[keep]), "n": int(y[keep].sum())}
        if maps is not None:
            have = [i for i in np.flatnonzero(keep) if masks[i] is not None]
            row.update(_pixel([np.asarray(maps[i]) for i in have], [masks[i] for i in have]))
        out["per_class"][defect] = row
    return out
