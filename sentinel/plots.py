"""Evaluation plots (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


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
    fig.savefig(path, dpi=100)
    plt.close(fig)
