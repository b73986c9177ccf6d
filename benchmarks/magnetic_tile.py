#!/usr/bin/env python3
"""Exploration benchmark for issue 24: the real Magnetic Tile Defect set at native resolution.

usage: python benchmarks/magnetic_tile.py [--root ../shared/data/magnetic-tile] [--memory 4096]
       [--borders 0 16 32]

Images are read as they come (grey, own size, no square resize) and maps are made at each
image's own size. Three maps, each smoothed (sigma 1 px) and scored by the mean of its top 0.05 %
of pixels, with the outer `border` px of the image left out of the image score (tile sides and
edges are the brightest, most varied part of every normal image and rank images otherwise):
- pixel Gaussian: 7 x 7 local mean and std as a Gaussian per pixel position, every image resized
  to the median size for it (position needs a common frame) and the map resized back;
- patch kNN: 7 x 7 grey patch at half resolution plus local statistics, nearest of --memory
  normal descriptors (the reference of benchmarks/image_refs.py, at native resolution);
- local contrast kNN: grey minus local mean and log local std at 3, 7, 15, 31 px plus grey, at
  stride 4 px, nearest of --memory normal descriptors (what a diffusion-free descriptor reaches).
Per defect kind against the good test images: image AUROC / pixel AUROC / PRO (FPR <= 0.3), and
the scoring time per image (median). Nothing here is chosen per defect kind yet: it is the
starting line, not a held-out figure.
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
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.image_refs import PatchKNN, local_stats  # noqa: E402
from sentinel.image import mvtec  # noqa: E402
from sentinel.image.evaluation import pro_score  # noqa: E402
from sentinel.scoring.patch_memory import PatchMapConfig, PatchMemory, _gaussian_blur  # noqa: E402

KINDS = ("blowhole", "crack", "fray")


def load(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255.0)[None]


def dataset(root: Path) -> tuple[list[torch.Tensor], list[tuple[str, torch.Tensor, np.ndarray]]]:
    train = [load(p) for p in mvtec.train_images(root)]
    test = []
    for t in mvtec.test_images(root):
        im = load(t.path)
        mask = np.asarray(Image.open(t.mask)) > 127 if t.mask else np.zeros(im.shape[1:], bool)
        test.append((t.defect, im, mask))
    return train, test


def contrast(im: torch.Tensor, scales=(3, 7, 15, 31)) -> torch.Tensor:
    g = im[None]
    parts = []
    for k in scales:
        m = F.avg_pool2d(g, k, 1, k // 2, count_include_pad=False)
        sq = F.avg_pool2d(g * g, k, 1, k // 2, count_include_pad=False)
        parts += [g - m, (sq - m * m).clamp_min(1e-8).sqrt().log()]
    return F.avg_pool2d(torch.cat([*parts, g], 1), 4)


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


def image_score(m: torch.Tensor, border: int, top: float = 0.0005) -> float:
    h, w = m.shape
    inner = m[border:h - border, border:w - border] if min(h, w) > 2 * border + 8 else m
    flat = inner.flatten()
    return float(flat.topk(max(1, round(top * flat.numel()))).values.mean())


def report(name: str, test, maps: list[np.ndarray], borders: list[int], raw_maps: list[torch.Tensor]) -> None:
    good = [i for i, t in enumerate(test) if t[0] == "good"]
    for border in borders:
        scores = [image_score(m, border) for m in raw_maps]
        cells = []
        for kind in KINDS:
            idx = [i for i, t in enumerate(test) if t[0] == kind]
            y = np.r_[np.zeros(len(good)), np.ones(len(idx))]
            img = roc_auc_score(y, [scores[i] for i in good + idx])
            cell = f"{kind} {img:.3f}"
            if border == borders[0]:
                lab = np.concatenate([test[i][2].ravel() for i in good + idx])
                val = np.concatenate([maps[i].ravel() for i in good + idx])
                pro = pro_score([maps[i] for i in good + idx], [test[i][2] for i in good + idx])
                cell += f"/{roc_auc_score(lab, val):.3f}/{pro:.3f}"
            cells.append(cell)
        print(f"{name:>20}  border {border:>2} px  " + "  ".join(cells), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=ROOT.parent / "shared" / "data" / "magnetic-tile")
    ap.add_argument("--memory", type=int, default=4096)
    ap.add_argument("--borders", type=int, nargs="+", default=[0, 16, 32])
    args = ap.parse_args()
    torch.set_num_threads(2)
    train, test = dataset(args.root)
    print(f"magnetic tile: {len(train)} good training images, {len(test)} test images; cells are image AUROC "
          "(/ pixel AUROC / PRO on the first border row)")
    methods = {"pixel Gaussian": PixelGaussian(train), "patch kNN": KNN(patch, train, args.memory),
               "local contrast kNN": KNN(contrast, train, args.memory)}
    with torch.inference_mode():
        for name, method in methods.items():
            raw, times = [], []
            for _, im, _ in test:
                t0 = time.perf_counter()
                raw.append(native_map(method(im), tuple(im.shape[1:])))
                times.append(time.perf_counter() - t0)
            report(name, test, [m.numpy() for m in raw], args.borders, raw)
            print(f"{name:>20}  {1000 * statistics.median(times):.0f} ms per image (median)", flush=True)


if __name__ == "__main__":
    main()
