#!/usr/bin/env python3
"""Held-out quality benchmark: sound the recipe was never tuned on, beside both references.

usage: python benchmarks/heldout.py [--out bench-out/heldout] [--steps 300] [--stage all|prepare|train|eval]
           [--sets dev-fan fam-pump us8k-air_conditioner-1to2 ...]

Sets (each: train/normal_* for training and calibration, test/{normal,anomalous_<kind>}_*):
  dev       dev-fan, dev-motor: the development set (../shared/bench/make_devset.py).
  families  fam-pump, fam-compressor, fam-gearbox, fam-blower: machine families written for this
            benchmark (benchmarks/families.py) with fault kinds the dev set does not have, and
            real ESC-50 clips (../shared/data/esc50-fold4) mixed in as foreign events.
  US8K      us8k-<class>-<a>to<b>: UrbanSound8K folds 1 and 2 (../shared/data/urbansound8k), train on
            one fold's clips of the normal class, test on the other fold (its normal-class clips
            against up to 25 clips of every other class), both ways, for four normal classes.
  fresh     fam-hvac, fam-spindle (families written after round 4, before any round-5 figure was
            seen) and us8k-<class>-1to2 for the six classes no round had run: never tuned on.
  fleets    fleet-fans, fleet-pumps (benchmarks/fleets.py, round 6): four similar units per family; each
            unit is scored by a bundle of its own (--steps), by its machine of one fleet bundle trained
            on all four (4 x --steps: the same training compute) and by its own references.
  real fan  real-fan-sensiml: ../shared/data/fan-sensiml, a real fan with loud induced faults (every
            method separates it: an end-to-end check, not a ranking).
Round 5 chose its settings leaving each dev/families/US8K set out in turn (docs/quality.md); the
fresh sets are the check of that choice. Round 6 let each bundle choose its fusion from its own
held-out audio and pseudo-anomalies (training.choose_fusion, sentinel.training.fusion); on the
real sets that lost to the fixed recipe until round 11 made it choose among mean fusions only, and
only beyond the holdout's noise (a paired bootstrap). It is on by default since: every bundle is
refitted with the choice, and "sentinel" is what it chose (`--fixed-fusion`: the recipe).
The gain columns use the first 24 normal test clips of each set.
Per set, in one run: the diffusion recipe and its variants (one network, its statistics refitted
with today's scoring defaults, rescored with other component weights), the DCASE 2020 autoencoder
(`sentinel train --model autoencoder`, same data), and the clip Gaussian (Ledoit-Wolf over each
clip's log-mel mean and std per bin).
Reported: AUC, pAUC (max FPR 0.1), TPR at the threshold calibrated on the training clips for
1 false alarm per hour (what `sentinel calibrate` does), the false alarms per hour that threshold
gives on the normal test audio (runs of windows above it), and the same false-alarm rate with
the normal test clips 6 dB louder and 6 dB quieter (a different microphone gain).
Every window's raw components of the training and test clips are written to
OUT/components/<set>-<model>.pt (with the post-processor), so that other weights and fusions can be
scored without another network pass (round 8 chose from those). `--per-file` adds round 7's
file-by-file refit (twice the evaluation time).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
US8K = SHARED / "data" / "urbansound8k"
ESC50 = SHARED / "data" / "esc50-fold4"
FAN = SHARED / "data" / "fan-sensiml"  # a real fan with induced faults: an end-to-end check, not a ranking
US8K_CLASSES = ["air_conditioner", "engine_idling", "drilling", "jackhammer"]
FAMILIES = ["pump", "compressor", "gearbox", "blower"]
# Round 5's fresh check: written or chosen before any round-5 figure was seen, never tuned on.
FRESH_FAMILIES = ["hvac", "spindle"]
FRESH_US8K = ["children_playing", "street_music", "siren", "dog_bark", "car_horn", "gun_shot"]
FLEETS = ["fans", "pumps"]  # benchmarks/fleets.py: two families of four units each
GAIN_DB = 6.0
GAIN_CLIPS = 24


def sentinel(*args: str) -> str:
    cmd = [sys.executable, "-m", "sentinel", "--log-level", "warning", *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def all_sets() -> list[str]:
    us = [f"us8k-{c}-{a}to{b}" for c in US8K_CLASSES for a, b in ((1, 2), (2, 1))]
    fresh = [*(f"fam-{f}" for f in FRESH_FAMILIES), *(f"us8k-{c}-1to2" for c in FRESH_US8K)]
    return ["dev-fan", "dev-motor", *(f"fam-{f}" for f in FAMILIES), *us, *fresh, *(f"fleet-{f}" for f in FLEETS),
            "real-fan-sensiml"]


def group(name: str) -> str:
    fresh = any(name.startswith(f"fam-{f}") for f in FRESH_FAMILIES) or any(f"-{c}-" in name for c in FRESH_US8K)
    if name.startswith("dev-"):
        return "dev"
    if name.startswith("fleet-"):
        return "fleets"
    if name.startswith("real-"):
        return "real fan"
    if name.startswith("fam-"):
        return "fresh families" if fresh else "families"
    return "US8K fresh classes" if fresh else "US8K"


# -- data --------------------------------------------------------------------------------------------
def prepare(out: Path, sets: list[str]) -> None:
    data = out / "data"
    if any(s.startswith("dev-") for s in sets) and not (data / "devset").exists():
        subprocess.run([sys.executable, str(SHARED / "bench" / "make_devset.py"), str(data / "devset")], check=True)
    for s in sets:
        target = data / s
        if target.exists():
            continue
        if s.startswith("dev-"):
            target.symlink_to(data / "devset" / s.removeprefix("dev-"), target_is_directory=True)
        elif s.startswith("fam-"):
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from families import build_family

            build_family(s.removeprefix("fam-"), target, esc50=ESC50)
        elif s.startswith("us8k-"):
            _us8k_set(s, target)
        elif s == "real-fan-sensiml":
            target.mkdir(parents=True)
            for sub in ("train", "test"):
                (target / sub).symlink_to(FAN / sub, target_is_directory=True)
        elif s.startswith("fleet-"):
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from fleets import build_fleet

            build_fleet(s.removeprefix("fleet-"), target)
        print(f"prepared {s}", flush=True)


def _us8k_set(name: str, target: Path) -> None:
    cls, folds = name.removeprefix("us8k-").rsplit("-", 1)
    a, b = (int(x) for x in folds.split("to"))
    with open(US8K / "metadata" / "UrbanSound8K.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    rng = np.random.default_rng(0)
    (target / "train").mkdir(parents=True)
    (target / "test").mkdir()
    for r in rows:
        src = US8K / "audio" / f"fold{r['fold']}" / r["slice_file_name"]
        if int(r["fold"]) == a and r["class"] == cls:
            (target / "train" / f"normal_{r['slice_file_name']}").symlink_to(src)
        elif int(r["fold"]) == b and r["class"] == cls:
            (target / "test" / f"normal_{r['slice_file_name']}").symlink_to(src)
    others = sorted({r["class"] for r in rows} - {cls})
    for o in others:
        pool = [r for r in rows if int(r["fold"]) == b and r["class"] == o]
        for i in rng.permutation(len(pool))[:25]:
            r = pool[i]
            src = US8K / "audio" / f"fold{b}" / r["slice_file_name"]
            (target / "test" / f"anomalous_{o}_{r['slice_file_name']}").symlink_to(src)


# -- training ------------------------------------------------------------------------------------------
def train(out: Path, sets: list[str], steps: int, ae_steps: int, seed: int, outliers: bool = False,
          config: Path | None = None) -> None:
    """Fixed steps, not a wall-clock budget: the figures must not depend on what else the machine ran."""
    for s in sets:
        if s.startswith("fleet-"):
            train_fleet(out, s, steps, ae_steps, seed, outliers)
            continue
        for model in ("diffusion", "ae"):
            bundle = out / "bundles" / f"{s}-{model}"
            if (bundle / "bundle.json").exists():
                continue
            args = ["train", "--data", str(out / "data" / s / "train"), "--out", str(bundle), "--device", "cpu",
                    "--steps", str(ae_steps if model == "ae" else steps), "--seed", str(seed)]
            if model == "ae":
                args += ["--model", "autoencoder"]
            elif config is not None:
                args += ["--config", str(config)]
            t0 = time.perf_counter()
            info = json.loads(sentinel(*args).strip().splitlines()[-1])
            print(json.dumps({"set": s, "model": model, "steps": info.get("steps"),
                              "seconds": round(time.perf_counter() - t0)}), flush=True)


def fleet_units(out: Path, s: str) -> list[str]:
    return sorted(d.name for d in (out / "data" / s).iterdir() if d.is_dir())


def train_fleet(out: Path, s: str, steps: int, ae_steps: int, seed: int, outliers: bool) -> None:
    """Per unit, a bundle of its own (`steps`) and the DCASE autoencoder; one fleet bundle for all the
    units with as many steps as the per-unit bundles together (equal training compute); with
    `outliers`, a second fleet bundle that also learns ESC-50 fold 4 as sound none of them makes."""
    root, units = out / "data" / s, fleet_units(out, s)
    named = [x for u in units for x in ("--data", f"{u}={root / u / 'train'}")]
    jobs = {f"{s}-fleet": [*named, "--steps", str(steps * len(units))]}
    if outliers:
        jobs[f"{s}-fleet-outliers"] = [*named, "--steps", str(steps * len(units)), "--outliers", str(ESC50 / "audio")]
    jobs |= {f"{s}-{u}-diffusion": ["--data", str(root / u / "train"), "--steps", str(steps)] for u in units}
    jobs |= {f"{s}-{u}-ae": ["--data", str(root / u / "train"), "--steps", str(ae_steps), "--model", "autoencoder"]
             for u in units}
    for name, args in jobs.items():
        bundle = out / "bundles" / name
        if (bundle / "bundle.json").exists():
            continue
        t0 = time.perf_counter()
        info = json.loads(sentinel("train", *args, "--out", str(bundle), "--device", "cpu", "--seed",
                                   str(seed)).strip().splitlines()[-1])
        print(json.dumps({"bundle": name, "steps": info.get("steps"), "seconds": round(time.perf_counter() - t0)}),
              flush=True)


# -- evaluation ----------------------------------------------------------------------------------------
def _label(path: Path) -> int:
    return 0 if path.name.startswith("normal") else 1


def _kind(path: Path) -> str:
    """anomalous_<kind>_<id>: the kind may hold underscores (gear_tooth, car_horn); ids hold none
    (the real fan's names are anomalous_<KIND>_<recording>_<n>: the kind is the upper-case part)."""
    if _label(path) == 0:
        return "normal"
    rest = path.stem.removeprefix("anomalous_")
    if rest.split("_", 1)[0].isupper():
        return rest.split("_", 1)[0].lower()
    return rest.rsplit("_", 1)[0] if "_" in rest else "anomalous"


def _false_alarms_per_hour(window_scores: list[np.ndarray], thr: float, hop_s: float, window_s: float) -> float:
    """Events (runs of windows above the threshold) per hour of audio."""
    events = sum(int(np.sum(np.diff(np.concatenate([[0], (w > thr).astype(int)])) == 1)) for w in window_scores)
    hours = sum(max(len(w) - 1, 0) * hop_s + window_s for w in window_scores) / 3600
    return events / hours if hours else float("nan")


def _metrics(labels: np.ndarray, files: np.ndarray, flagged: np.ndarray) -> dict:
    return {"auc": float(roc_auc_score(labels, files)), "pauc": float(roc_auc_score(labels, files, max_fpr=0.1)),
            "tpr": float(flagged[labels == 1].mean())}


def _load(path: Path, sr: int):
    import torch

    from sentinel.audio import load_audio

    return load_audio(path, sr).to(torch.float32)


def judge(cw: list[np.ndarray], tw: list[np.ndarray], test_files: list[Path], post, hop: float, win: float
          ) -> tuple[float, dict]:
    """(threshold, metrics) of one scorer's window scores: the threshold calibrated on the training
    clips' windows `cw` for 1 false alarm per hour (what `sentinel calibrate` does), then on the test
    clips' windows `tw` AUC, pAUC and the TPR at it (file scores by `post`), the false alarms per
    hour it gives on the normal test audio, and the AUC of each anomaly kind."""
    import torch

    from sentinel.scoring.calibration import calibrate

    labels = np.array([_label(p) for p in test_files])
    thr = calibrate(np.concatenate(cw), hop, len(cw), false_alarms_per_hour=1.0).threshold
    files = np.array([post.file_score(torch.from_numpy(w)) for w in tw])
    flagged = np.array([bool((w > thr).any()) for w in tw])
    normal_w = [w for w, y in zip(tw, labels, strict=True) if y == 0]
    row = {**_metrics(labels, files, flagged), "fa_per_h": _false_alarms_per_hour(normal_w, thr, hop, win)}
    for kind in sorted({_kind(p) for p in test_files} - {"normal"}):
        keep = np.array([_kind(p) in ("normal", kind) for p in test_files])
        row[f"auc_{kind}"] = float(roc_auc_score(labels[keep], files[keep]))
    return thr, row


def _window_scores(results: list, scorer, weights: dict | None = None, tolerance_db: float | None = None,
                   combine: str | None = None) -> list[np.ndarray]:
    """Each recording's window scores: the bundle's own (weights None), or its components rescored
    with other weights, level tolerance or combination (no network pass)."""
    if weights is None:
        return [r.scores.numpy() for r in results]
    return [scorer.combine(r.components, weights, tolerance_db, combine).numpy() for r in results]


def evaluate_set(out: Path, s: str, variants: dict[str, tuple[dict | None, float, str, str | None]],
                 per_file: bool = False, choose_fusion: bool = True) -> list[dict]:
    """variants: name -> (component weights, level tolerance dB, file aggregate, combine; None: the
    bundle's chosen fusion), all from one network's components. The network's normal statistics
    are fitted again with today's scoring defaults (`sentinel refit`: same network, same training
    split, the fusion chosen again), so a recipe change is measured on the networks the earlier
    figures came from."""
    import torch

    from sentinel.bundle import load_bundle
    from sentinel.scoring.config import ScoringConfig
    from sentinel.training.trainer import refit

    root = out / "data" / s
    train_files = sorted((root / "train").iterdir())
    test_files = sorted((root / "test").iterdir())
    labels = np.array([_label(p) for p in test_files])
    rows = []
    for model in ("diffusion", "per-file", "ae"):
        bundle = load_bundle(out / "bundles" / f"{s}-{'ae' if model == 'ae' else 'diffusion'}")
        if model == "per-file":
            if not per_file:
                continue
            # The same network with its held-out recordings drawn file by file (round 6 and before)
            # rather than source by source (training.holdout_groups). The network heard some of those
            # files, so this over-states the split's ranking gain; `--train-config` with
            # `training.holdout_groups: false` is the like-for-like run (docs/quality.md round 7).
            if not bundle.training.get("config", {}).get("holdout_groups", False):
                continue
            bundle.training["config"]["holdout_groups"] = False
        if model != "ae":
            # the bundle chooses its fusion from its own held-out audio (training.choose_fusion), as
            # today's training does, whatever the default was when it was trained
            bundle.training.setdefault("config", {})["choose_fusion"] = choose_fusion
            bundle = refit(bundle, [root / "train"], ScoringConfig(), torch.device("cpu"))
        scorer = bundle.scorer(torch.device("cpu"))
        sr, hop, win = bundle.features.sample_rate, scorer.config.hop_seconds, bundle.features.window_seconds

        def components(files, gain_db=0.0, scorer=scorer, sr=sr):
            res = []
            for f in files:
                x = _load(f, sr) * 10 ** (gain_db / 20)
                res.append(scorer.score_recording(x))
            return res

        t0 = time.perf_counter()
        cal = components(train_files)
        test = components(test_files)
        gain_set = [f for f in test_files if _label(f) == 0][:GAIN_CLIPS]
        loud, quiet = components(gain_set, GAIN_DB), components(gain_set, -GAIN_DB)
        seconds = time.perf_counter() - t0
        if model != "per-file":  # every window's components, for studies of other fusions without a rescore
            (out / "components").mkdir(exist_ok=True)
            torch.save({"train": [r.components for r in cal], "test": [r.components for r in test],
                        "test_files": [f.name for f in test_files], "labels": labels.tolist(),
                        "post": scorer.post.to_dict()},
                       out / "components" / f"{s}-{model}.pt")
        wanted = {"diffusion": variants, "ae": {"ae": None},
                  "per-file": {f"{k}-per-file": v for k, v in variants.items() if k in ("recipe", "span0")}}[model]
        for name, variant in wanted.items():
            def windows(results, variant=variant, scorer=scorer):
                return _window_scores(results, scorer) if variant is None else \
                    _window_scores(results, scorer, variant[0], variant[1], variant[3])

            aggregate = scorer.config.file_aggregate if variant is None else variant[2]
            post = dataclasses.replace(scorer.post, config=dataclasses.replace(scorer.config, file_aggregate=aggregate))
            thr, row = judge(windows(cal), windows(test), test_files, post, hop, win)
            if name == "sentinel":
                row["fusion"] = (scorer.post.fusion or {}).get("name", "recipe")
            rows.append({"set": s, "group": group(s), "variant": name, **row,
                         "fa_per_h_loud": _false_alarms_per_hour(windows(loud), thr, hop, win),
                         "fa_per_h_quiet": _false_alarms_per_hour(windows(quiet), thr, hop, win),
                         "score_s": seconds})
    rows.append({"set": s, "group": group(s), "variant": "gaussian", **gaussian(train_files, test_files, labels)})
    return rows


def evaluate_fleet(out: Path, s: str, choose_fusion: bool = True) -> list[dict]:
    """Each unit of a fleet set, by its own bundle, by its machine of the fleet bundle(s), by its
    own DCASE autoencoder and by its own clip Gaussian; one row per unit and method. The diffusion
    bundles' statistics are fitted again with today's scoring defaults (`refit`, fleets included),
    and each is also scored without the frame view ("... frames0": the recipe before round 9)."""
    import torch

    from sentinel.bundle import load_bundle
    from sentinel.scoring.config import ScoringConfig
    from sentinel.training.trainer import refit

    root, rows = out / "data" / s, []
    units = fleet_units(out, s)
    refitted: dict[str, object] = {}

    def bundle_of(name: str, machine: str | None, unit: str):
        if name not in refitted:
            b = load_bundle(out / "bundles" / name)
            if b.model_kind == "diffusion":
                data = {x: [root / x / "train"] for x in units} if b.machines else [root / unit / "train"]
                b.training.setdefault("config", {})["choose_fusion"] = choose_fusion
                b = refit(b, data, ScoringConfig(), torch.device("cpu"))
            refitted[name] = b
        return refitted[name].for_machine(machine)

    no_frames = {**ScoringConfig().weights, "frames": 0.0}
    for u in units:
        train_files = sorted((root / u / "train").iterdir())
        test_files = sorted((root / u / "test").iterdir())
        methods = {"per-unit": (f"{s}-{u}-diffusion", None), "fleet": (f"{s}-fleet", u),
                   "fleet+outliers": (f"{s}-fleet-outliers", u), "ae": (f"{s}-{u}-ae", None)}
        for method, (name, machine) in methods.items():
            if not (out / "bundles" / name / "bundle.json").exists():
                continue
            bundle = bundle_of(name, machine, u)
            scorer = bundle.scorer(torch.device("cpu"))
            sr, hop, win = bundle.features.sample_rate, scorer.config.hop_seconds, bundle.features.window_seconds
            t0 = time.perf_counter()
            cal = [scorer.score_recording(_load(f, sr)) for f in train_files]
            test = [scorer.score_recording(_load(f, sr)) for f in test_files]
            seconds = time.perf_counter() - t0
            variants = {method: None}
            if method != "ae":
                variants[f"{method} frames0"] = no_frames
            for variant, weights in variants.items():
                _, row = judge(_window_scores(cal, scorer, weights), _window_scores(test, scorer, weights), test_files,
                               scorer.post, hop, win)
                rows.append({"set": f"{s}/{u}", "group": group(s), "variant": variant, **row,
                             "fa_per_h_loud": float("nan"), "fa_per_h_quiet": float("nan"), "score_s": seconds})
        labels = np.array([_label(p) for p in test_files])
        rows.append({"set": f"{s}/{u}", "group": group(s), "variant": "gaussian",
                     **gaussian(train_files, test_files, labels)})
    return rows


def gaussian(train_files: list[Path], test_files: list[Path], labels: np.ndarray) -> dict:
    """The clip reference: Ledoit-Wolf Gaussian over each clip's log-mel mean and std per mel bin."""
    import torch
    from sklearn.covariance import LedoitWolf

    from sentinel.features.mel import LogMel
    from sentinel.features.spec import FeatureSpec

    mel = LogMel(FeatureSpec())

    def feats(files, gain_db=0.0):
        with torch.inference_mode():
            return np.stack([torch.cat([m.mean(1), m.std(1)]).numpy()
                             for m in (mel(_load(f, 16000) * 10 ** (gain_db / 20)) for f in files)])

    # Threshold from clips it was not fitted on (in-sample distances are far too small): fit on
    # four fifths of the training clips, flag above the largest distance of the other fifth.
    order = np.random.default_rng(0).permutation(len(train_files))
    held = max(2, len(train_files) // 5)
    train_x = feats(train_files)
    model = LedoitWolf().fit(train_x[order[held:]])
    thr = float(model.mahalanobis(train_x[order[:held]]).max())
    s = model.mahalanobis(feats(test_files))
    normal = [f for f in test_files if _label(f) == 0][:GAIN_CLIPS]
    row = {**_metrics(labels, s, s > thr), "fa_per_h": float("nan"),
           "fa_per_h_loud": float(np.mean(model.mahalanobis(feats(normal, GAIN_DB)) > thr)),
           "fa_per_h_quiet": float(np.mean(model.mahalanobis(feats(normal, -GAIN_DB)) > thr))}
    for kind in sorted({_kind(p) for p in test_files} - {"normal"}):
        keep = np.array([_kind(p) in ("normal", kind) for p in test_files])
        row[f"auc_{kind}"] = float(roc_auc_score(labels[keep], s[keep]))
    return row


def _mean(values: list[float]) -> float:
    v = np.array(values, dtype=float)
    return float(v[np.isfinite(v)].mean()) if np.isfinite(v).any() else float("nan")


def print_table(rows: list[dict]) -> None:
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    print(f"\n{'set':<30} " + " ".join(f"{v:>17}" for v in variants) + "   (AUC / pAUC)")
    for s in dict.fromkeys(r["set"] for r in rows):
        cells = []
        for v in variants:
            r = next((r for r in rows if r["set"] == s and r["variant"] == v), None)
            cells.append(f"{r['auc']:.3f} / {r['pauc']:.3f}" if r else "-")
        print(f"{s:<30} " + " ".join(f"{c:>17}" for c in cells))
    print(f"\n{'group':<20} {'variant':<14} {'AUC':>6} {'pAUC':>6} {'TPR@thr':>7} {'FA/h':>6} "
          f"{'FA/h +6dB':>9} {'FA/h -6dB':>9} {'sets':>4}")
    for g in dict.fromkeys(r["group"] for r in rows):
        for v in variants:
            rs = [r for r in rows if r["group"] == g and r["variant"] == v]
            if not rs:
                continue
            m = {k: _mean([r[k] for r in rs]) for k in
                 ("auc", "pauc", "tpr", "fa_per_h", "fa_per_h_loud", "fa_per_h_quiet")}
            print(f"{g:<20} {v:<14} {m['auc']:6.3f} {m['pauc']:6.3f} {m['tpr']:7.3f} {m['fa_per_h']:6.1f} "
                  f"{m['fa_per_h_loud']:9.1f} {m['fa_per_h_quiet']:9.1f} {len(rs):>4}")
    print("(gaussian: TPR at the largest distance of training clips it was not fitted on; its +-6 dB columns "
          "are the share of normal clips flagged, not a rate)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench-out" / "heldout")
    ap.add_argument("--sets", nargs="*", default=all_sets())
    ap.add_argument("--steps", type=int, default=300, help="training steps of each diffusion model")
    ap.add_argument("--ae-steps", type=int, default=1500, help="training steps of each DCASE autoencoder")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stage", choices=["all", "prepare", "train", "eval"], default="all")
    ap.add_argument("--train-config", type=Path, help="`sentinel train --config` of the diffusion models (e.g. "
                    "another width); default: the defaults")
    ap.add_argument("--fleet-outliers", action="store_true",
                    help="fleet sets: also train a fleet bundle with ESC-50 fold 4 as --outliers")
    ap.add_argument("--per-file", action="store_true", help="also refit each network with its held-out audio drawn "
                    "file by file (round 7's recipe-per-file columns; doubles the evaluation time)")
    ap.add_argument("--fixed-fusion", action="store_true", help="refit every diffusion bundle without the fusion "
                    "choice (training.choose_fusion false): the 'sentinel' rows are the recipe")
    ap.add_argument("--fresh", action="store_true", help="evaluate again sets that have results from an earlier run")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    if a.stage in ("all", "prepare", "train"):
        prepare(a.out, a.sets)
    if a.stage in ("all", "train"):
        train(a.out, a.sets, a.steps, a.ae_steps, a.seed, a.fleet_outliers, a.train_config)
    if a.stage in ("all", "eval"):
        from sentinel.scoring.config import ScoringConfig

        cfg = ScoringConfig()
        tol, agg = cfg.level_tolerance_db, cfg.file_aggregate
        # The shipped recipe (today's defaults, with the fusion the bundle chose at its refit, unless
        # --fixed-fusion) and what it is made of, all from one network: the fixed mean of
        # z-scores it chose among (recipe), each fusion alone (tail, max-z), the window components
        # alone (span0), the span alone, and the max file aggregate of earlier rounds. Nothing is
        # picked here: the choice was the bundle's.
        w = dict(cfg.weights)
        variants = {"sentinel": (None, tol, agg, None),
                    "recipe": (w, tol, agg, "mean"),
                    "tail": (w, tol, agg, "tail"),
                    "max-z": (w, tol, agg, "max"),
                    "span0": ({**w, "span": 0.0}, tol, agg, "mean"),
                    "span-only": ({k: (1.0 if k == "span" else 0.0) for k in w}, tol, agg, "mean"),
                    "clip-only": ({k: (1.0 if k == "clip" else 0.0) for k in w}, tol, agg, "mean"),
                    "+clip": ({**w, "clip": 1.0}, tol, agg, "mean"),
                    "+clip2": ({**w, "clip": 2.0}, tol, agg, "mean"),
                    "+clip-tail": ({**w, "clip": 1.0}, tol, agg, "tail"),
                    "+clip2-tail": ({**w, "clip": 2.0}, tol, agg, "tail"),
                    "frames-only": ({k: (1.0 if k == "frames" else 0.0) for k in w}, tol, agg, "mean"),
                    "+frames": ({**w, "frames": 1.0}, tol, agg, "mean"),
                    "+clip+frames": ({**w, "clip": 1.0, "frames": 1.0}, tol, agg, "mean"),
                    "+clip+frames2": ({**w, "clip": 1.0, "frames": 2.0}, tol, agg, "mean"),
                    "+clip+frames-tail": ({**w, "clip": 1.0, "frames": 1.0}, tol, agg, "tail"),
                    "opt-in": ({**w, "clip": 1.0, "frames": 2.0}, tol, agg, "tail"),
                    "+clip2+frames2-tail": ({**w, "clip": 2.0, "frames": 2.0}, tol, agg, "tail"),
                    "max-agg": (w, tol, "max", "mean"),
                    # round 12: the opt-in neighbours component (weight 0 in the recipe) weighed in, and alone
                    "neighbours1": ({**w, "neighbours": 1.0}, tol, agg, "mean"),
                    "neighbours2": ({**w, "neighbours": 2.0}, tol, agg, "mean"),
                    "neighbours4": ({**w, "neighbours": 4.0}, tol, agg, "mean"),
                    "neighbours-only": ({k: (1.0 if k == "neighbours" else 0.0) for k in w}, tol, agg, "mean")}
        rows = []
        (a.out / "results").mkdir(exist_ok=True)
        for s in a.sets:
            cached = a.out / "results" / f"{s}.json"  # one file per set: an interrupted run goes on where it was
            if cached.exists() and not a.fresh:
                rows += [{**r, "group": group(s)} for r in json.loads(cached.read_text())]
                continue
            choose = not a.fixed_fusion
            new = evaluate_fleet(a.out, s, choose) if s.startswith("fleet-") else \
                evaluate_set(a.out, s, variants, a.per_file, choose)
            cached.write_text(json.dumps(new))
            rows += new
            for r in new:
                print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}), flush=True)
        (a.out / "results.json").write_text(json.dumps(rows, indent=1))
        print_table(rows)
        print("\nThe recipe beside the references on every set:")
        print_table([r for r in rows if r["variant"] in ("sentinel", "ae", "gaussian")])
        if any(r["group"] == "fleets" for r in rows):
            print("\nFleets: each unit by its own bundle, by the fleet bundle (same training steps in all), "
                  "and by its own references:")
            print_table([r for r in rows if r["group"] == "fleets"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
