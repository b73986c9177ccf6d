"""`sentinel eval`: labelled recordings (or images) -> AUC, pAUC (max FPR 0.1, as DCASE) and the
true- and false-positive rates at the bundle's threshold, with per-class tables. Audio here;
image metrics (pixel AUROC, PRO) in sentinel.image.evaluation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sentinel.errors import DataError
from sentinel.recordings import score_files

MAX_FPR = 0.1


def auc_pauc(y: np.ndarray, s: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    return {"auc": float(roc_auc_score(y, s)), "pauc": float(roc_auc_score(y, s, max_fpr=MAX_FPR))}


@dataclass
class Labelled:
    """What every evaluation returns: labels (1 = anomalous), ranking scores, verdicts at the
    threshold (None: uncalibrated) and what else the data set reports."""

    y: np.ndarray
    scores: np.ndarray
    flagged: list[bool | None]
    extra: dict = field(default_factory=dict)

    def result(self, bundle_id: str, threshold: float | None) -> dict:
        if self.y.min() == self.y.max():
            raise DataError("eval needs at least one readable normal and one anomalous item")
        out = {"bundle_id": bundle_id, **auc_pauc(self.y, self.scores), "n_normal": int((self.y == 0).sum()),
               "n_anomalous": int(self.y.sum()), **self.extra, "max_fpr": MAX_FPR, "threshold": threshold}
        if threshold is not None:
            hit = np.array([bool(f) for f in self.flagged])
            out["tpr_at_threshold"] = float(hit[self.y == 1].mean())
            out["fpr_at_threshold"] = float(hit[self.y == 0].mean())
        return out


def eval_folders(scorer, normal: Sequence[str], anomalous: Sequence[str],
                 warn: Callable[[str], None]) -> Labelled:
    a = score_files(scorer, normal, warn=warn)
    b = score_files(scorer, anomalous, warn=warn)
    if not a or not b:
        raise DataError("eval needs at least one readable normal and one anomalous recording")
    both = a + b
    return Labelled(np.array([0] * len(a) + [1] * len(b)), np.array([r.file_score for r in both]),
                    [r.flagged for r in both])


def eval_urbansound8k(scorer, root: str | None, normal_classes: list[str] | None, test_fold: int,
                      warn: Callable[[str], None]) -> Labelled:
    """The test fold of the UrbanSound8K layout under `root`, with a per-anomalous-class table."""
    from sentinel.training import urbansound8k as us8k

    all_clips, normal_ids = us8k_split(root, normal_classes)
    clips = us8k.test_clips(all_clips, test_fold)
    by_path = {c.path: c for c in clips}
    scored = score_files(scorer, [c.path for c in clips], tile_short=True, warn=warn)
    y = np.array([by_path[r.path].class_id not in normal_ids for r in scored], dtype=int)
    s = np.array([r.file_score for r in scored])
    if len(y) == 0 or y.min() == y.max():
        raise DataError(f"fold {test_fold} needs both normal and anomalous clips to evaluate")
    per_class = {}
    for cid in sorted({by_path[r.path].class_id for r in scored} - normal_ids):
        keep = np.array([by_path[r.path].class_id in normal_ids | {cid} for r in scored])
        per_class[us8k.CLASSES[cid]] = {**auc_pauc(y[keep], s[keep]), "n": int(y[keep].sum())}
    extra = {"normal_classes": [us8k.CLASSES[i] for i in sorted(normal_ids)], "test_fold": test_fold,
             "per_class": per_class}
    return Labelled(y, s, [r.flagged for r in scored], extra)


def us8k_split(root: str | None, normal_classes: list[str] | None):
    """The UrbanSound8K clips under `root` and the normal class IDs, checked once for train and eval."""
    from sentinel.training import urbansound8k as us8k

    if not root:
        raise DataError("--dataset urbansound8k needs --root DIR (the folder with metadata/ and audio/)")
    return us8k.read_metadata(root), us8k.parse_classes(normal_classes or us8k.DEFAULT_NORMAL)


def eval_images(scorer, bundle, dataset: str, root: str | None, normal: Sequence[str] | None,
                anomalous: Sequence[str] | None, warn: Callable[[str], None]) -> Labelled:
    """Image AUROC (and per defect), plus pixel AUROC and PRO over the images that have masks."""
    from sentinel.image import evaluation, mvtec
    from sentinel.image.io import find_images
    from sentinel.image.maps import score_image_files

    if dataset == "mvtec":
        if not root:
            raise DataError("--dataset mvtec needs --root DIR (an MVTec AD category with train/ test/ ground_truth/)")
        items = mvtec.test_images(root)
    elif dataset == "folder" and normal and anomalous:
        items = [mvtec.TestImage(p, mvtec.GOOD, None) for p in find_images(normal)]
        items += [mvtec.TestImage(p, "anomalous", None) for p in find_images(anomalous)]
    else:
        raise DataError("eval on images: give --dataset mvtec --root DIR, or --normal DIR and --anomalous DIR")
    info = {t.path: t for t in items}
    missing = [t for t in items if t.anomalous and t.mask is None]
    if missing and dataset == "mvtec":
        warn(f"{len(missing)} defect images have no ground_truth mask (e.g. {missing[0].path}); "
             "they count for image AUROC only")
    with_masks = any(t.mask is not None for t in items)
    scored = score_image_files(scorer, bundle.spec, [t.path for t in items], with_masks, warn)
    kept = [info[r.path] for r in scored]
    s = np.array([r.score for r in scored])
    try:
        res = evaluation.evaluate(kept, s, [r.map.numpy() for r in scored] if with_masks else None, on_error=warn)
    except ValueError as e:
        raise DataError(f"eval: {e} (readable ones)") from None
    y = np.array([t.anomalous for t in kept], dtype=int)
    return Labelled(y, s, [scorer.post.window_flagged(float(v)) for v in s],
                    {k: res[k] for k in ("per_class", "pixel_auc", "pro")})


def print_table(result: dict) -> None:
    result = dict(result)
    per_class = result.pop("per_class", None)
    for k, v in result.items():
        print(f"{k:>18}  {v:.4f}" if isinstance(v, float) else f"{k:>18}  {v}")
    if per_class:
        pixels = any("pixel_auc" in r for r in per_class.values())
        print(f"\n{'anomalous class':<18} {'n':>5} {'AUC':>7} {'pAUC':>7}"  # class or defect type
              + (f" {'px AUC':>7} {'PRO':>7}" if pixels else ""))
        for name, r in per_class.items():
            px = f" {r.get('pixel_auc', float('nan')):7.3f} {r.get('pro', float('nan')):7.3f}" if pixels else ""
            print(f"{name:<18} {r['n']:>5} {r['auc']:7.3f} {r['pauc']:7.3f}{px}")


def training_images_warning(bundle, normal: Sequence[str]) -> str | None:
    """The network (and the patch memory) saw the training images: they score lower than unseen
    normal ones, so a threshold set on them flags too many good images."""
    trained = []
    for d in bundle.training.get("data", []):
        p = Path(d).resolve()
        trained += [p, p / "train" / "good"]
    for n in normal:
        if Path(n).resolve() in trained:
            return (f"calibrate: {n} holds the bundle's training images, which score lower than unseen ones; "
                    "calibrate on held-out normal images (training already set a threshold on its held-out share)")
    return None
