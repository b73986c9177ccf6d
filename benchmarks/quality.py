#!/usr/bin/env python3
"""Quality benchmark on the development set: every candidate trained, calibrated and scored by the
real CLI, with the same CPU budget, over several seeds; one table of AUC, pAUC and TPR.

usage: python benchmarks/quality.py [--devset DIR] [--minutes 15] [--machines fan motor]
           [--variants default ae gaussian ...] [--seeds 0 1 2] [--out DIR] [--reuse DIR]

Variants (../shared/METHOD.md lists the questions they answer):
  trained:  default (Sentinel's recipe), ae (the DCASE 2020 autoencoder baseline, `--model
            autoencoder`), mel (log-mel input instead of its wavelet bands), mel+wavelet (both),
            no-attention, keep-level (the model input keeps each window's level; no level component);
  rescored: recon-only (no embedding term), no-level (no level component), semantic (plus the
            feature-space discrepancy),
            one-strength (t = 300 only), ddim5 (5 DDIM steps per noise level instead of one pass):
            the default network of the same seed with other scoring settings, normal statistics
            refitted on the training clips (`sentinel.training.trainer.refit`);
  reference: gaussian (a Gaussian over each clip's log-mel mean and std per mel bin; no network).
Each is repeated per seed; the table shows mean +- half the range over seeds.
`--reuse DIR` takes trained bundles from an earlier run's --out (DIR/bundle-<machine>-<variant>-s<seed>)
instead of training them again.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from sentinel.scoring.config import ScoringConfig

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "bench" / "make_devset.py"
TRAINED = {"default": "", "mel": "features: {representation: mel}\n",
           "mel+wavelet": "features: {representation: mel+wavelet}\n", "no-attention": "model: {attention: false}\n",
           # the recipe before level removal: level left in the model input, no level component
           "keep-level": "features: {remove_level: false}\nscoring: {weights: {recon_mean: 1.0, recon_topk: 1.0, "
                         "feature: 0.0, embedding: 1.0, level: 0.0}}\n"}
DEFAULT_WEIGHTS = ScoringConfig().weights
RESCORED = {"recon-only": {"weights": {**DEFAULT_WEIGHTS, "embedding": 0.0, "level": 0.0}},
            "no-level": {"weights": {**DEFAULT_WEIGHTS, "level": 0.0}},
            "semantic": {"weights": {**DEFAULT_WEIGHTS, "feature": 1.0}},
            "one-strength": {"strengths": (0.3,)}, "ddim5": {"steps": 5}}


def sentinel(*args: str) -> str:
    cmd = [sys.executable, "-m", "sentinel", "--log-level", "warning", *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def labels(files: list[str]) -> np.ndarray:
    return np.array([0 if Path(f).name.startswith("normal") else 1 for f in files])


def metrics(names: list[str], s: np.ndarray, flagged: np.ndarray | None) -> dict:
    y = labels(names)
    row = {"auc": roc_auc_score(y, s), "pauc": roc_auc_score(y, s, max_fpr=0.1),
           "tpr": float(flagged[y == 1].mean()) if flagged is not None else float("nan")}
    for fault in sorted({Path(n).name.split("_")[1] for n in names if not Path(n).name.startswith("normal")}):
        keep = np.array([Path(n).name.startswith("normal") or Path(n).name.split("_")[1] == fault for n in names])
        row[f"auc_{fault}"] = roc_auc_score(y[keep], s[keep])
    return row


def evaluate_bundle(bundle: Path, dev: Path) -> dict:
    sentinel("calibrate", str(bundle), "--normal", str(dev / "train"), "--device", "cpu")
    t0 = time.perf_counter()
    lines = [json.loads(x) for x in sentinel("score", str(bundle), str(dev / "test"), "--format", "jsonl",
                                             "--device", "cpu").splitlines()]
    score_s = time.perf_counter() - t0
    files = [x for x in lines if x["kind"] == "file"]
    ends: dict[str, float] = {}
    for w in lines:
        if w["kind"] == "window":
            ends[w["file"]] = max(ends.get(w["file"], 0.0), w["end_s"])
    audio_s = sum(ends.values())
    row = metrics([f["file"] for f in files], np.array([f["score"] for f in files]),
                  np.array([bool(f["anomaly"]) for f in files]))
    return {**row, "rtf": audio_s / score_s}


def gaussian_reference(dev: Path) -> dict:
    """A Gaussian (Ledoit-Wolf) over each clip's per-bin log-mel mean and std; Mahalanobis score."""
    import torch
    from sklearn.covariance import LedoitWolf

    from sentinel.audio import find_audio, load_audio
    from sentinel.features.mel import LogMel
    from sentinel.features.spec import FeatureSpec

    mel = LogMel(FeatureSpec())

    def feats(folder: Path) -> tuple[list[str], np.ndarray]:
        files = find_audio([folder])
        with torch.inference_mode():
            rows = [torch.cat([m.mean(1), m.std(1)]).numpy() for m in (mel(load_audio(f, 16000)) for f in files)]
        return [str(f) for f in files], np.stack(rows)

    t0 = time.perf_counter()
    _, train = feats(dev / "train")
    model = LedoitWolf().fit(train)
    train_s = time.perf_counter() - t0
    thr = np.quantile(model.mahalanobis(train), 0.99)
    names, test = feats(dev / "test")
    s = model.mahalanobis(test)
    return {**metrics(names, s, s > thr), "steps": 0, "train_s": train_s, "rtf": float("nan")}


def train_bundle(variant: str, dev: Path, out: Path, seed: int, minutes: float) -> tuple[Path, dict]:
    bundle = out / f"bundle-{dev.name}-{variant}-s{seed}"
    cfg = out / f"{variant}.yaml"
    cfg.write_text(TRAINED.get(variant, ""))
    model = ["--model", "autoencoder"] if variant == "ae" else ["--config", str(cfg)]
    t0 = time.perf_counter()
    info = json.loads(sentinel("train", "--data", str(dev / "train"), "--out", str(bundle), "--device", "cpu",
                               "--steps", "1000000", "--max-minutes", str(minutes), "--seed", str(seed), *model))
    return bundle, {"steps": info["steps"], "train_s": time.perf_counter() - t0}


def rescore_bundle(default: Path, variant: str, dev: Path, out: Path, seed: int) -> Path:
    import torch

    from sentinel.bundle import load_bundle, save_bundle
    from sentinel.training.trainer import refit

    src = load_bundle(default)
    scoring = dataclasses.replace(src.scoring, **RESCORED[variant])
    return save_bundle(refit(src, [dev / "train"], scoring, torch.device("cpu")),
                       out / f"bundle-{dev.name}-{variant}-s{seed}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devset", type=Path)
    ap.add_argument("--minutes", type=float, default=15.0, help="training budget per model")
    ap.add_argument("--machines", nargs="*", help="machine types (default: all in the dev set)")
    ap.add_argument("--variants", nargs="*", default=["default", "ae", "gaussian"],
                    choices=[*TRAINED, "ae", *RESCORED, "gaussian"])
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--reuse", type=Path, metavar="DIR", help="take trained bundles from here where they exist")
    ap.add_argument("--out", type=Path, default=ROOT / "bench-out")
    a = ap.parse_args()

    dev_root = a.devset or a.out / "devset"
    if not (dev_root.exists() and any(dev_root.iterdir())):
        subprocess.run([sys.executable, str(SHARED), str(dev_root)], check=True)
    a.out.mkdir(parents=True, exist_ok=True)
    machines = a.machines or sorted(p.name for p in dev_root.iterdir() if (p / "train").is_dir())
    results: dict[tuple[str, str], list[dict]] = {}
    for m in machines:
        dev = dev_root / m
        for seed in a.seeds:
            defaults: Path | None = None
            for v in a.variants:
                if v == "gaussian":
                    if seed != a.seeds[0]:
                        continue  # deterministic: one run is every run
                    row = gaussian_reference(dev)
                elif v in RESCORED:
                    if defaults is None:
                        defaults = reuse(a.reuse, m, "default", seed) or train_bundle("default", dev, a.out, seed,
                                                                                      a.minutes)[0]
                    bundle = rescore_bundle(defaults, v, dev, a.out, seed)
                    row = {**evaluate_bundle(bundle, dev), "steps": 0, "train_s": float("nan")}
                else:
                    reused = reuse(a.reuse, m, v, seed)
                    if reused:
                        bundle = reused
                        meta = json.loads((bundle / "bundle.json").read_text())["training"]
                        info = {"steps": meta["steps"], "train_s": meta["seconds"]}
                    else:
                        bundle, info = train_bundle(v, dev, a.out, seed, a.minutes)
                    if v == "default":
                        defaults = bundle
                    row = {**evaluate_bundle(bundle, dev), **info}
                row.update(machine=m, variant=v, seed=seed)
                results.setdefault((v, m), []).append(row)
                print(json.dumps({k: round(x, 4) if isinstance(x, float) else x for k, x in row.items()}), flush=True)
    print_table(results, machines, a)
    return 0


def reuse(folder: Path | None, machine: str, variant: str, seed: int) -> Path | None:
    p = folder / f"bundle-{machine}-{variant}-s{seed}" if folder else None
    return p if p is not None and (p / "bundle.json").is_file() else None


def _finite_mean(values: list[float]) -> float:
    """Mean of the finite values; 0 where there are none (rescored variants train nothing)."""
    v = np.array(values, dtype=float)
    return float(v[np.isfinite(v)].mean()) if np.isfinite(v).any() else 0.0


def _pm(values: list[float]) -> str:
    v = np.array(values, dtype=float)
    return f"{v.mean():.3f}" if len(v) == 1 else f"{v.mean():.3f}±{(v.max() - v.min()) / 2:.3f}"


def print_table(results: dict, machines: list[str], a: argparse.Namespace) -> None:
    variants = list(dict.fromkeys(v for v, _ in results))
    head = f"{'variant':<13} {'machine':<7} {'AUC':>11} {'pAUC':>11} {'TPR@thr':>11} {'steps':>6} {'train s':>8} " \
           f"{'RTF':>6} {'weakest fault':>18}"
    print("\n" + head + "\n" + "-" * len(head))
    for v in variants:
        for m in machines:
            rows = results.get((v, m), [])
            if not rows:
                continue
            faults = {k[4:]: np.mean([r[k] for r in rows]) for k in rows[0] if k.startswith("auc_")}
            worst = min(faults, key=faults.get) if faults else "-"
            print(f"{v:<13} {m:<7} {_pm([r['auc'] for r in rows]):>11} {_pm([r['pauc'] for r in rows]):>11} "
                  f"{_pm([r['tpr'] for r in rows]):>11} {int(np.mean([r['steps'] for r in rows])):>6} "
                  f"{_finite_mean([r['train_s'] for r in rows]):8.0f} "
                  f"{np.mean([r['rtf'] for r in rows]):6.1f} {worst + f' {faults.get(worst, 0):.3f}':>18}")
        per_seed = {}
        for m in machines:
            for r in results.get((v, m), []):
                per_seed.setdefault(r["seed"], []).append(r)
        means = {k: [np.mean([r[k] for r in rs]) for rs in per_seed.values() if len(rs) == len(machines)]
                 for k in ("auc", "pauc", "tpr")}
        if means["auc"]:
            print(f"{v:<13} {'mean':<7} {_pm(means['auc']):>11} {_pm(means['pauc']):>11} {_pm(means['tpr']):>11}")
    print(f"(cpu threads: {os.cpu_count()}, training budget {a.minutes} min per model, seeds {a.seeds})")


if __name__ == "__main__":
    raise SystemExit(main())
