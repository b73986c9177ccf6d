#!/usr/bin/env python3
"""Image benchmark on real photographs: scikit-image's CC0 textures (brick, grass, gravel) with
synthetic defects (scratches, stains, holes), in the MVTec AD layout, through the real CLI.

usage: python benchmarks/textures.py [--minutes 4] [--textures brick grass gravel] [--out DIR]

For each texture: training crops come from the top half of the photograph, test crops (good,
and damaged with each defect, with ground-truth masks) from the bottom half, so no test pixel was
seen in training. Then `sentinel train --modality image`, `sentinel calibrate` (0.99 quantile of
the training images) and `sentinel eval --dataset mvtec`. Prints image AUROC, pixel AUROC and
per-defect image AUROC. Needs scikit-image (`pip install -e '.[bench]'`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sentinel(*args: str) -> str:
    cmd = [sys.executable, "-m", "sentinel", "--log-level", "warning", *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--textures", nargs="*", default=["brick", "grass", "gravel"])
    ap.add_argument("--minutes", type=float, default=4.0, help="training budget per texture")
    ap.add_argument("--size", type=int, default=128, help="image size (crop and model input)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench-out" / "textures")
    a = ap.parse_args()
    try:
        import skimage.data
    except ImportError:
        print("benchmarks/textures.py needs scikit-image: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    from sentinel.image.defects import build_mvtec_category

    a.out.mkdir(parents=True, exist_ok=True)
    cfg = a.out / "image.yaml"
    cfg.write_text(f"device: cpu\nimage: {{size: {a.size}}}\ntraining: {{batch_size: 16, checkpoint_every: 100000}}\n")
    rows = []
    for name in a.textures:
        cat = a.out / name
        if not (cat / "train").is_dir():
            build_mvtec_category(getattr(skimage.data, name)(), cat, crop=a.size, n_train=120, n_test_good=40,
                                 n_per_defect=20, seed=a.seed)
        bundle = a.out / f"bundle-{name}"
        t0 = time.perf_counter()
        train = json.loads(sentinel("train", "--modality", "image", "--data", str(cat), "--out", str(bundle),
                                    "--config", str(cfg), "--steps", "100000", "--max-minutes", str(a.minutes),
                                    "--seed", str(a.seed)))
        train_s = time.perf_counter() - t0
        sentinel("calibrate", str(bundle), "--normal", str(cat / "train" / "good"))
        t0 = time.perf_counter()
        res = json.loads(sentinel("eval", str(bundle), "--dataset", "mvtec", "--root", str(cat), "--format", "json"))
        eval_s = time.perf_counter() - t0
        row = {"texture": name, "auc": res["auc"], "pixel_auc": res["pixel_auc"], "steps": train["steps"],
               "train_s": train_s, "eval_s": eval_s, "tpr": res.get("tpr_at_threshold"),
               "fpr": res.get("fpr_at_threshold"), **{f"auc_{k}": v["auc"] for k, v in res["per_class"].items()}}
        rows.append(row)
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)

    defects = sorted({k[4:] for r in rows for k in r if k.startswith("auc_")})
    head = (f"{'texture':<8} {'img AUROC':>9} {'px AUROC':>9} {'TPR@thr':>8} {'FPR@thr':>8} {'steps':>6} "
            f"{'train s':>8} " + " ".join(f"{d:>8}" for d in defects))
    print("\n" + head + "\n" + "-" * len(head))
    for r in rows:
        print(f"{r['texture']:<8} {r['auc']:9.3f} {r['pixel_auc']:9.3f} {r['tpr']:8.3f} {r['fpr']:8.3f} "
              f"{r['steps']:6d} {r['train_s']:8.0f} " + " ".join(f"{r['auc_' + d]:8.3f}" for d in defects))
    n = len(rows)
    print(f"{'mean':<8} {sum(r['auc'] for r in rows) / n:9.3f} {sum(r['pixel_auc'] for r in rows) / n:9.3f}")
    print(f"(cpu threads: {os.cpu_count()}, budget {a.minutes} min per texture, images {a.size} px)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
