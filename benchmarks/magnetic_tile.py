#!/usr/bin/env python3
"""Issue 24's benchmark: the real Magnetic Tile Defect set at native resolution, Sentinel's
diffusion patch maps against two references, with every setting chosen leaving one defect kind out.

usage: sentinel train --config configs/inspection.yaml --modality image \
           --data ../shared/data/magnetic-tile --out /tmp/tile
       python benchmarks/magnetic_tile.py --bundle /tmp/tile [--root ../shared/data/magnetic-tile]

Images are read as they come (grey, own size, no square resize); every map is at the image's own
size and every image score is the mean of the map's top fraction of pixels.
- Sentinel: the bundle's denoiser (its encoder features at two scales plus wavelet-band energies,
  the patch memory of sentinel/scoring/patch_memory.py), refitted here for each setting on the
  bundle's own training split (the held-out 15 % scale the maps, as `sentinel train` does). Settings:
  (feature_weight, feature_scales) pairs x edge_px (border scaling) x top_fraction.
- pixel Gaussian: 7 x 7 local mean and std as a Gaussian per pixel position, every image resized
  to the median size for it (position needs a common frame) and the map resized back;
- patch kNN: 7 x 7 grey patch at half resolution plus local statistics, nearest of --memory
  normal descriptors (the reference of benchmarks/image_refs.py, at native resolution). Both
  references choose their border (px left out of the image score) the same leave-one-out way.
Leave one defect kind out: for each kind in turn, each method's setting is the one with the best
mean of image AUROC, pixel AUROC and PRO (FPR <= 0.3) on the other two kinds; the row reports the
held-out kind at that setting. Then the per-setting table, and scoring time per image (median).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.image_refs import PatchKNN, local_stats  # noqa: E402
from sentinel.bundle import load_bundle  # noqa: E402
from sentinel.image import evaluation, mvtec  # noqa: E402
from sentinel.image.io import load_images  # noqa: E402
from sentinel.scoring.image_scorer import ImageScorer  # noqa: E402
from sentinel.scoring.patch_memory import PatchMapConfig, PatchMemory, _gaussian_blur  # noqa: E402
from sentinel.training.trainer import holdout_split  # noqa: E402

KINDS = ("blowhole", "crack", "fray")


def load(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255.0)[None]


def patch(im: torch.Tensor) -> torch.Tensor:
    return PatchKNN.describe(im[None])


class KNN:
    def __init__(self, describe, train: list[torch.Tensor], memory: int, per_image: int = 300) -> None:
        gen = torch.Generator().manual_seed(0)
        flat = []
        for im in train:
            d = describe(im)[0]
            d = d.permute(1, 2, 0).reshape(-1, d.shape[0])
            flat.append(d[torch.randperm(len(d), generator=gen)[:per_image]])
        allf = torch.cat(flat)
        self.describe, self.centre, self.std = describe, allf.mean(0), allf.std(0).clamp_min(1e-4)
        keep = torch.randperm(len(allf), generator=gen)[:memory]
        self.memory = PatchMemory(PatchMapConfig(), (allf[keep] - self.centre) / self.std, self.centre, 1 / self.std)

    def __call__(self, im: torch.Tensor) -> torch.Tensor:
        return self.memory.distances((self.describe(im) - self.centre[:, None, None]) / self.std[:, None, None])[0]


class PixelGaussian:
    def __init__(self, train: list[torch.Tensor]) -> None:
        self.size = (int(np.median([t.shape[1] for t in train])), int(np.median([t.shape[2] for t in train])))
        f = torch.cat([local_stats(self._frame(t)) for t in train])
        self.mean, self.std = f.mean(0), f.std(0).clamp_min(1e-4)

    def _frame(self, im: torch.Tensor) -> torch.Tensor:
        return F.interpolate(im[None], size=self.size, mode="bilinear", align_corners=False)

    def __call__(self, im: torch.Tensor) -> torch.Tensor:
        return ((local_stats(self._frame(im))[0] - self.mean) / self.std).pow(2).mean(0).sqrt()


def native_map(raw: torch.Tensor, shape: tuple[int, int], sigma: float = 1.0) -> torch.Tensor:
    m = F.interpolate(raw[None, None], size=shape, mode="bilinear", align_corners=False)[0]
    return _gaussian_blur(m, sigma)[0]


def border_score(m: torch.Tensor, border: int, top: float = 0.0005) -> float:
    h, w = m.shape
    inner = m[border:h - border, border:w - border] if min(h, w) > 2 * border + 8 else m
    flat = inner.flatten()
    return float(flat.topk(max(1, round(top * flat.numel()))).values.mean())


def judge(items: list[mvtec.TestImage], scores: list[float], maps: list[np.ndarray] | None) -> dict[str, dict]:
    """Per kind: image AUROC, and pixel AUROC and PRO when maps are given."""
    res = evaluation.evaluate(items, np.asarray(scores), maps)
    return {k: {"img": r["auc"], "px": r.get("pixel_auc"), "pro": r.get("pro")} for k, r in res["per_class"].items()}


def merit(row: dict) -> float:
    return float(np.mean([v for v in row.values() if v is not None]))


def loko(table: dict[str, dict[str, dict]]) -> dict[str, tuple[str, dict]]:
    """table[setting][kind] = figures -> for each held-out kind, (setting chosen on the others, its figures)."""
    out = {}
    for held in KINDS:
        best = max(table, key=lambda s: np.mean([merit(table[s][k]) for k in KINDS if k != held]))
        out[held] = (best, table[best][held])
    return out


def fmt(r: dict) -> str:
    return f"{r['img']:.3f} / {r['px']:.3f} / {r['pro']:.3f}"


def judge_settings(method: str, items: list[mvtec.TestImage], maps: list[torch.Tensor],
                   scores: dict[str, list[float]]) -> dict[str, dict]:
    """One map per image, several image scores (one list per setting) -> table[setting][kind],
    each setting's row printed; pixel AUROC and PRO depend on the maps only, so they are computed once."""
    table, pixel = {}, None
    arrays = [m.numpy() for m in maps]
    for setting, values in scores.items():
        res = judge(items, values, arrays if pixel is None else None)
        if pixel is None:
            pixel = {k: (r["px"], r["pro"]) for k, r in res.items()}
        for k, r in res.items():
            r["px"], r["pro"] = pixel[k]
        table[setting] = res
        print(f"{method:>14}  {setting:<28} " + "  ".join(f"{k} {fmt(res[k])}" for k in KINDS), flush=True)
    return table


def sentinel_table(bundle_dir: Path, root: Path, items: list[mvtec.TestImage], descriptors: list[tuple[float, int]],
                   edges: list[int], tops: list[float]) -> tuple[dict, float]:
    """table[setting][kind], and the median ms per image of scoring at the bundle's own settings."""
    bundle = load_bundle(bundle_dir)
    spec = bundle.spec
    diffusion = bundle.scorer(torch.device("cpu")).diffusion
    _, images = load_images(mvtec.train_images(root), spec)
    train, hold = holdout_split(images, 0.15, 0)
    _, test = load_images([t.path for t in items], spec)
    model, stride = diffusion.model, spec.input_stride

    def to_input(x: torch.Tensor) -> torch.Tensor:
        return diffusion.extractor(x.float())

    table = {}
    base = bundle.patch_memory.config
    for fw, sc in descriptors:
        cfg = PatchMapConfig(**{**base.to_dict(), "feature_weight": fw, "feature_scales": sc, "edge_px": 0})
        pm = PatchMemory.fit(model, to_input, train, cfg, input_stride=stride)
        held_raw = pm.raw_image_maps(model, to_input, hold, 8)
        test_raw = pm.raw_image_maps(model, to_input, test, 8)
        for edge in edges:
            pe = PatchMemory(PatchMapConfig(**{**cfg.to_dict(), "edge_px": edge}), pm.memory, pm.centre, pm.scale,
                             stride)
            pe.fit_scaling(held_raw)
            z = [pe.normalise(r) for r in test_raw]
            table |= judge_settings("sentinel", items, z, {f"fw {fw:g} scales {sc} edge {edge} top {top:g}":
                                                           [border_score(m, 0, top) for m in z] for top in tops})
    scorer = ImageScorer(diffusion, bundle.patch_memory)
    times = []
    with torch.inference_mode():
        for im in test[:60]:
            t0 = time.perf_counter()
            scorer.score_maps([im])
            times.append(time.perf_counter() - t0)
    return table, 1000 * statistics.median(times)


def reference_table(name: str, method, items, test: list[torch.Tensor], borders: list[int]) -> tuple[dict, float]:
    raw, times = [], []
    with torch.inference_mode():
        for im in test:
            t0 = time.perf_counter()
            raw.append(native_map(method(im), tuple(im.shape[1:])))
            times.append(time.perf_counter() - t0)
    table = judge_settings(name, items, raw, {f"border {b}": [border_score(m, b) for m in raw] for b in borders})
    return table, 1000 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=ROOT.parent / "shared" / "data" / "magnetic-tile")
    ap.add_argument("--bundle", type=Path, help="a bundle trained on --root with configs/inspection.yaml")
    ap.add_argument("--memory", type=int, default=4096, help="patch kNN reference: memory size")
    ap.add_argument("--borders", type=int, nargs="+", default=[0, 16, 32])
    ap.add_argument("--descriptors", nargs="+", default=["0.5:2", "2:2", "1:3", "2:3"],
                    help="Sentinel: feature_weight:feature_scales pairs (each refits the memory: ~7 min, 2 cores)")
    ap.add_argument("--edges", type=int, nargs="+", default=[0, 16, 32], help="Sentinel: edge_px values tried")
    ap.add_argument("--tops", type=float, nargs="+", default=[0.0005, 0.002], help="Sentinel: top_fraction values")
    args = ap.parse_args()
    torch.set_num_threads(2)
    items = [t for t in mvtec.test_images(args.root) if t.defect in (mvtec.GOOD, *KINDS)]
    train = [load(p) for p in mvtec.train_images(args.root)]
    test = [load(t.path) for t in items]
    print(f"magnetic tile: {len(train)} good training images, {len(items)} test images; cells are image AUROC / "
          "pixel AUROC / PRO", flush=True)
    tables, ms = {}, {}
    if args.bundle:
        pairs = [(float(d.split(":")[0]), int(d.split(":")[1])) for d in args.descriptors]
        tables["sentinel"], ms["sentinel"] = sentinel_table(args.bundle, args.root, items, pairs, args.edges, args.tops)
    for name, method in (("pixel Gaussian", PixelGaussian(train)), ("patch kNN", KNN(patch, train, args.memory))):
        tables[name], ms[name] = reference_table(name, method, items, test, args.borders)
    print("\nleave one defect kind out (setting chosen on the other two kinds; image AUROC / pixel AUROC / PRO):")
    print(f"{'method':>14}  " + "  ".join(f"{k:<28}" for k in KINDS) + "  ms/image")
    for name, table in tables.items():
        chosen = loko(table)
        cells = [f"{fmt(chosen[k][1])} ({chosen[k][0]})" for k in KINDS]
        print(f"{name:>14}  " + "  ".join(f"{c:<28}" for c in cells) + f"  {ms[name]:.0f}")
        mean = {m: np.mean([chosen[k][1][m] for k in KINDS]) for m in ("img", "px", "pro")}
        print(f"{'':>14}  mean of the held-out kinds: {fmt(mean)}")


if __name__ == "__main__":
    main()
