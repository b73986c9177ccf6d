#!/usr/bin/env python3
"""Quality benchmark on the development set: train, calibrate, score, report AUC and pAUC.

usage: python benchmarks/quality.py [--devset DIR] [--minutes 15] [--machines fan motor] [--out DIR]

Builds the dev set with ../shared/bench/make_devset.py when --devset is not given, then for each
machine type runs the real CLI: `sentinel train` (CPU, fixed wall-clock budget), `sentinel
calibrate` on the normal training clips, and `sentinel score --format jsonl` on the test clips.
Prints one table: AUC, pAUC (max FPR 0.1), TPR/FPR at the calibrated threshold, per-fault AUC,
training time and the scoring real-time factor.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "bench" / "make_devset.py"


def sentinel(*args: str) -> str:
    cmd = [sys.executable, "-m", "sentinel", "--log-level", "warning", *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devset", type=Path)
    ap.add_argument("--minutes", type=float, default=15.0, help="training budget per machine type")
    ap.add_argument("--steps", type=int, default=100_000, help="step cap (the minutes usually end first)")
    ap.add_argument("--machines", nargs="*", help="machine types (default: all in the dev set)")
    ap.add_argument("--config", type=Path, help="sentinel config to train with")
    ap.add_argument("--out", type=Path, default=ROOT / "bench-out")
    a = ap.parse_args()

    dev = a.devset or a.out / "devset"
    if not (dev.exists() and any(dev.iterdir())):
        subprocess.run([sys.executable, str(SHARED), str(dev)], check=True)
    machines = a.machines or sorted(p.name for p in dev.iterdir() if (p / "train").is_dir())
    rows = []
    for m in machines:
        bundle = a.out / f"bundle-{m}"
        t0 = time.perf_counter()
        cfg = ["--config", str(a.config)] if a.config else []
        train = json.loads(sentinel("train", "--data", str(dev / m / "train"), "--out", str(bundle), "--device",
                                    "cpu", "--steps", str(a.steps), "--max-minutes", str(a.minutes), *cfg))
        train_s = time.perf_counter() - t0
        cal = json.loads(sentinel("calibrate", str(bundle), "--normal", str(dev / m / "train"), "--device", "cpu"))
        t0 = time.perf_counter()
        lines = [json.loads(x) for x in sentinel("score", str(bundle), str(dev / m / "test"), "--format", "jsonl",
                                                 "--device", "cpu").splitlines()]
        score_s = time.perf_counter() - t0
        files = [x for x in lines if x["kind"] == "file"]
        ends: dict[str, float] = {}
        for w in lines:
            if w["kind"] == "window":
                ends[w["file"]] = max(ends.get(w["file"], 0.0), w["end_s"])
        audio_s = sum(ends.values())
        names = [Path(f["file"]).name for f in files]
        y = np.array([0 if n.startswith("normal") else 1 for n in names])
        s = np.array([f["score"] for f in files])
        flagged = np.array([bool(f["anomaly"]) for f in files])
        row = {
            "machine": m, "auc": roc_auc_score(y, s), "pauc": roc_auc_score(y, s, max_fpr=0.1),
            "tpr": flagged[y == 1].mean(), "fpr": flagged[y == 0].mean(), "steps": train["steps"],
            "train_s": train_s, "threshold": cal["threshold"], "rtf": audio_s / score_s,
        }
        faults = sorted({n.split("_")[1] for n in names if not n.startswith("normal")})
        for fault in faults:
            keep = np.array([n.startswith("normal") or n.split("_")[1] == fault for n in names])
            row[f"auc_{fault}"] = roc_auc_score(y[keep], s[keep])
        rows.append(row)
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)

    faults = sorted({k[4:] for r in rows for k in r if k.startswith("auc_")})
    head = f"{'machine':<8} {'AUC':>6} {'pAUC':>6} {'TPR@thr':>8} {'FPR@thr':>8} {'steps':>6} {'train s':>8} " \
           f"{'RTF':>6}  " + " ".join(f"{f:>9}" for f in faults)
    print("\n" + head + "\n" + "-" * len(head))
    for r in rows:
        print(f"{r['machine']:<8} {r['auc']:6.3f} {r['pauc']:6.3f} {r['tpr']:8.3f} {r['fpr']:8.3f} {r['steps']:6d} "
              f"{r['train_s']:8.0f} {r['rtf']:6.1f}  " + " ".join(f"{r.get('auc_' + f, float('nan')):9.3f}"
                                                                for f in faults))
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("auc", "pauc", "tpr", "fpr")}
    print(f"{'mean':<8} {mean['auc']:6.3f} {mean['pauc']:6.3f} {mean['tpr']:8.3f} {mean['fpr']:8.3f}")
    print(f"(cpu threads: {os.cpu_count()}, budget {a.minutes} min per machine)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
