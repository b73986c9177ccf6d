#!/usr/bin/env python3
"""Image benchmark on real photographs: scikit-image's CC0 textures (brick, grass, gravel) with
grey-level and coloured synthetic defects, in the MVTec AD layout, beside two references.

usage: python benchmarks/textures.py [--steps 400] [--textures brick grass gravel] [--out DIR] [--fresh]

For each texture: 120 training crops (128 px) from the top half of the photograph; from the bottom
half 40 good test crops and 10 damaged crops per defect kind (so no test pixel was seen in
training): the grey-level kinds of sentinel/image/defects.py (darker and lighter soft stains at
two strengths, a 2-px scratch 50-90 grey levels off, a dark hole, blur at two strengths, a patch
of the same texture at the wrong scale, a patch of another texture matched in grey level) and the
coloured ones (stain, pure black/white scratch, black hole). Then, through the real CLI,
`sentinel train --modality image --steps N` (fixed steps, so CPU contention cannot move the
figures; the bundle calibrates itself on held-out training crops) and `sentinel eval --dataset
mvtec`; in-process, on the same images, the references of benchmarks/image_refs.py (per-pixel
Gaussian, patch kNN) and Sentinel's residual maps from before the patch memory.

Reported per texture and method, separately for the grey-level and the coloured defects: image
AUROC, pixel AUROC, PRO (integrated to FPR 0.3); per defect kind for Sentinel; TPR and FPR at the
bundle's threshold; scoring time per image (median of 3 passes over 32 images, 2 threads).
Settings were chosen on brick (the development texture); grass and gravel are held out.
Needs scikit-image (`pip install -e '.[bench]'`). Bundles and data are cached under --out.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OTHER = {"brick": "gravel", "grass": "brick", "gravel": "grass"}  # source of each texture's swap_texture patches


def sentinel(*args: str) -> str:
    cmd = [sys.executable, "-m", "sentinel", "--log-level", "warning", *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def build(name: str, out: Path, seed: int) -> Path:
    import skimage.data

    from sentinel.image.defects import COLOUR_DEFECTS, GREY_DEFECTS, build_mvtec_category

    cat = out / name
    if not (cat / "test").is_dir():
        build_mvtec_category(getattr(skimage.data, name)(), cat, crop=128, n_train=120, n_test_good=40,
                             n_per_defect=10, seed=seed, defects={**GREY_DEFECTS, **COLOUR_DEFECTS},
                             other=getattr(skimage.data, OTHER[name])())
    return cat


def train(cat: Path, bundle: Path, cfg: Path, steps: int, seed: int) -> float:
    if (bundle / "bundle.json").is_file():
        return float("nan")
    t0 = time.perf_counter()
    sentinel("train", "--modality", "image", "--data", str(cat), "--out", str(bundle), "--config", str(cfg),
             "--steps", str(steps), "--seed", str(seed))
    return time.perf_counter() - t0


def ensure_map(bundle_dir: Path, cat: Path, refit: bool = False) -> None:
    """A cached bundle from before the patch memory (or any, with `refit`) gets one made with the
    current PatchMapConfig, as `sentinel train` makes it now."""
    from sentinel.bundle import load_bundle, save_bundle
    from sentinel.image import mvtec
    from sentinel.image.io import load_images
    from sentinel.image.train import fit_image_map
    from sentinel.scoring.patch_memory import PatchMapConfig
    from sentinel.training.trainer import TrainingConfig, holdout_split

    bundle = load_bundle(bundle_dir)
    if bundle.patch_memory is not None and not refit:
        return
    files, images = load_images(mvtec.train_images(cat), bundle.spec)
    fit_idx, hold_idx = holdout_split(list(range(len(files))), TrainingConfig().holdout_fraction, 0)
    scorer = bundle.scorer("cpu")
    bundle.patch_memory, bundle.calibration = fit_image_map(getattr(scorer, "diffusion", scorer),
                                                            [images[i] for i in fit_idx],
                                                            [images[i] for i in hold_idx], PatchMapConfig())
    save_bundle(bundle, bundle_dir)


def summarise(method: str, texture: str, res: dict, kinds: set[str]) -> dict:
    """Mean over `kinds` of per-defect image AUROC, pixel AUROC and PRO."""
    rows = [r for k, r in res["per_class"].items() if k in kinds]
    mean = {m: float(np.mean([r[m] for r in rows])) for m in ("auc", "pixel_auc", "pro")}
    return {"texture": texture, "method": method, **mean}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--textures", nargs="*", default=["brick", "grass", "gravel"])
    ap.add_argument("--steps", type=int, default=400, help="training steps per texture (batch 16)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench-out" / "textures")
    ap.add_argument("--fresh", action="store_true", help="retrain bundles that exist under --out")
    ap.add_argument("--refit-maps", action="store_true", help="remake cached bundles' patch memories (after a "
                    "change to the map settings) without retraining their networks")
    a = ap.parse_args()
    try:
        import skimage  # noqa: F401
    except ImportError:
        print("benchmarks/textures.py needs scikit-image: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    from benchmarks.image_refs import PatchKNN, PixelGaussian
    from sentinel.bundle import load_bundle
    from sentinel.image import evaluation, mvtec
    from sentinel.image.defects import COLOUR_DEFECTS, GREY_DEFECTS
    from sentinel.image.io import load_images
    from sentinel.image.maps import upsample
    from sentinel.image.train import fit_image_map
    from sentinel.scoring.image_scorer import ImageScorer
    from sentinel.scoring.patch_memory import PatchMapConfig
    from sentinel.training.trainer import TrainingConfig, holdout_split

    torch.set_num_threads(2)
    a.out.mkdir(parents=True, exist_ok=True)
    cfg = a.out / "image.yaml"
    cfg.write_text("device: cpu\nimage: {size: 128}\ntraining: {batch_size: 16, checkpoint_every: 100000}\n")
    grey, colour = set(GREY_DEFECTS) | {"swap_texture"}, set(COLOUR_DEFECTS)
    summary, details = [], []
    for name in a.textures:
        cat = build(name, a.out, a.seed)
        bundle_dir = a.out / f"bundle-{name}"
        if a.fresh and bundle_dir.exists():
            import shutil

            shutil.rmtree(bundle_dir)
        train_s = train(cat, bundle_dir, cfg, a.steps, a.seed)
        ensure_map(bundle_dir, cat, a.refit_maps)
        res = json.loads(sentinel("eval", str(bundle_dir), "--dataset", "mvtec", "--root", str(cat), "--format",
                                  "json"))
        bundle = load_bundle(bundle_dir)
        scorer = bundle.scorer("cpu")
        items = mvtec.test_images(cat)
        test = torch.stack(load_images([t.path for t in items], bundle.spec)[1])
        normal = torch.stack(load_images(mvtec.train_images(cat), bundle.spec)[1])
        methods = {"sentinel": res}
        legacy = scorer.diffusion
        maps = upsample(legacy.anomaly_map(test), 128)
        methods["residual (before)"] = evaluation.evaluate(items, legacy.score(test).scores.numpy(),
                                                           list(maps.numpy()))
        # Ablation: the same maps without the denoiser's features (texture energy alone).
        fit_idx, hold_idx = holdout_split(list(range(len(normal))), TrainingConfig().holdout_fraction, 0)
        no_feat, _ = fit_image_map(legacy, list(normal[fit_idx]), list(normal[hold_idx]),
                                   PatchMapConfig(feature_weight=0.0))
        s_nf, m_nf = ImageScorer(legacy, no_feat).score_maps(test)
        methods["energy only (ablation)"] = evaluation.evaluate(items, s_nf.numpy(), [m.numpy() for m in m_nf])
        for label, ref in (("pixel gaussian", PixelGaussian(normal)), ("patch knn", PatchKNN(normal))):
            scores, maps = ref(test)
            methods[label] = evaluation.evaluate(items, scores.numpy(), list(maps.numpy()))
        per_image = []
        for _ in range(3):
            t0 = time.perf_counter()
            scorer.score_maps(test[:32])
            per_image.append((time.perf_counter() - t0) / 32 * 1000)
        for method, r in methods.items():
            for kinds, label in ((grey, "grey"), (colour, "colour")):
                row = summarise(method, name, r, kinds) | {"defects": label}
                summary.append(row)
                print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
        details.append({"texture": name, "train_s": train_s, "ms_per_image": statistics.median(per_image),
                        "threshold": res.get("threshold"), "tpr": res.get("tpr_at_threshold"),
                        "fpr": res.get("fpr_at_threshold"), "per_class": res["per_class"],
                        "image_auc_all": res["auc"], "pixel_auc_all": res["pixel_auc"], "pro_all": res["pro"]})
    (a.out / "results.json").write_text(json.dumps({"summary": summary, "details": details}, indent=1))

    for label in ("grey", "colour"):
        print(f"\n{label}-level defects: mean over defect kinds of image AUROC / pixel AUROC / PRO")
        methods = list(dict.fromkeys(r["method"] for r in summary))
        print(f"{'texture':<8} " + " ".join(f"{m[:24]:>24}" for m in methods))
        for name in a.textures:
            cells = []
            for m in methods:
                r = next(x for x in summary if x["texture"] == name and x["method"] == m and x["defects"] == label)
                cells.append(f"{r['auc']:.3f} {r['pixel_auc']:.3f} {r['pro']:.3f}".rjust(24))
            print(f"{name:<8} " + " ".join(cells))
    print("\nSentinel per defect kind: image AUROC / pixel AUROC / PRO")
    kinds = sorted(grey | colour)
    for d in details:
        print(f"{d['texture']:<8} TPR@thr {d['tpr']:.3f} FPR@thr {d['fpr']:.3f}  "
              f"{d['ms_per_image']:.1f} ms/image")
        for k in kinds:
            r = d["per_class"][k]
            print(f"   {k:<18} {r['auc']:.3f} {r['pixel_auc']:.3f} {r['pro']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
