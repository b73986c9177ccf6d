"""Evaluation plots (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np

from sentinel.features.spec import FeatureSpec


def roc_plot(labels: np.ndarray, scores: np.ndarray, threshold: float | None, path: str | Path,
             title: str = "") -> None:
    """ROC curve beside histograms of normal and anomalous scores, saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_auc_score, roc_curve

    fpr, tpr, _ = roc_curve(labels, scores)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(fpr, tpr, label=f"AUC {roc_auc_score(labels, scores):.3f}")
    a.plot([0, 1], [0, 1], ls="--", c="grey")
    a.axvline(0.1, c="grey", ls=":", label="max FPR for pAUC")
    a.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    a.legend(loc="lower right")
    bins = np.linspace(scores.min(), scores.max(), 30)
    b.hist(scores[labels == 0], bins=bins, alpha=0.6, label="normal")
    b.hist(scores[labels == 1], bins=bins, alpha=0.6, label="anomalous")
    if threshold is not None:
        b.axvline(threshold, c="red", label="threshold")
    b.set(xlabel="file score", ylabel="files", title="scores")
    b.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)


def score_axis(ax, scores: np.ndarray, threshold: float | None) -> None:
    """A y axis on which the threshold and peaks far above it both show: linear up to the
    threshold, logarithmic above (symlog). A linear axis lays a threshold of 3.6 flat under
    peaks of 200."""
    top = float(np.nanmax(scores)) if len(scores) else 0.0
    if threshold is not None and threshold > 0 and top > 4 * threshold:
        ax.set_yscale("symlog", linthresh=threshold, linscale=1.5)


def score_plot(wave: np.ndarray, features: FeatureSpec, starts_s: list[float], window_s: float, scores: np.ndarray,
               threshold: float | None, path: str | Path | BinaryIO, title: str = "",
               components: dict[str, np.ndarray] | None = None) -> None:
    """A recording's log-mel spectrogram (the bundle's, as the model sees it) with its window
    scores under it, on one time axis, as PNG: where in time and frequency a miss or a false
    alarm comes from."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from sentinel.features.mel import LogMel

    with torch.inference_mode():
        db = LogMel(features)(torch.as_tensor(wave, dtype=torch.float32)).numpy()
    duration = max(len(wave) / features.sample_rate, 1e-3)
    fig, (a, b) = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True, height_ratios=[3, 2])
    a.imshow(db, origin="lower", aspect="auto", extent=(0, duration, 0, db.shape[0]), cmap="magma",
             vmin=db.max() - 80, vmax=db.max())
    a.set(ylabel="mel bin", title=title)
    centres = np.asarray(starts_s) + window_s / 2
    b.plot(centres, scores, marker="o", ms=3, c="black", label="score")
    for name, values in (components or {}).items():
        b.plot(centres, values, lw=0.8, alpha=0.7, label=name)
    if threshold is not None:
        b.axhline(threshold, c="red", ls="--", label="threshold")
        above = scores > threshold
        for s0, hit in zip(starts_s, above, strict=True):
            if hit:
                a.axvspan(s0, s0 + window_s, color="red", alpha=0.12)
    score_axis(b, np.asarray(scores, dtype=float), threshold)
    b.set(xlabel="time (s)", ylabel="window score", xlim=(0, duration))
    b.legend(loc="upper right", fontsize=7, ncols=3)
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)
