"""The whole idea, end to end on generated audio: a trained model flags an injected anomaly."""

import numpy as np
import torch

from sentinel import synth
from sentinel.audio import load_audio
from sentinel.bundle import load_bundle


def test_injected_anomaly_scores_above_normal_windows(tiny_bundle):
    bundle = load_bundle(tiny_bundle)
    scorer = bundle.scorer("cpu")
    rng = np.random.default_rng(42)
    clean = synth.machine(rng, 6.0)
    hit = synth.inject(rng, clean, at_s=3.0, kind="rattle", seconds=0.5)
    res_clean = scorer.score_recording(torch.from_numpy(clean))
    res_hit = scorer.score_recording(torch.from_numpy(hit))
    starts = np.array(res_hit.starts_s)
    inside = (starts + res_hit.window_s > 3.0) & (starts < 3.5)
    assert res_hit.scores[inside].max() > res_clean.scores.max()
    assert res_hit.scores[inside].max() > bundle.threshold
    assert (res_clean.scores <= bundle.threshold).float().mean() > 0.9


def test_anomalous_files_rank_above_normal_files(tiny_bundle, machine_data):
    from sklearn.metrics import roc_auc_score

    scorer = load_bundle(tiny_bundle).scorer("cpu")
    files = sorted(machine_data["test"].glob("*.wav"))
    # ranked as `sentinel eval` ranks them: the bundle's file score (the mean of the 3 highest windows)
    scores = [scorer.post.file_score(scorer.score_recording(load_audio(f, 16000)).scores) for f in files]
    labels = [f.name.startswith("anomalous") for f in files]
    assert roc_auc_score(labels, scores) >= 0.9


def test_score_plot_writes_a_spectrogram_with_scores(tiny_bundle, machine_data, tmp_path):
    from PIL import Image

    from tests.conftest import run_cli

    target = machine_data["test"] / "anomalous_0.wav"
    proc = run_cli("score", str(tiny_bundle), str(target), "--plot", str(tmp_path / "plots"), check=True)
    png = tmp_path / "plots" / "anomalous_0_scores.png"
    assert str(png) in proc.stderr
    with Image.open(png) as im:
        assert im.size[0] > 500 and im.size[1] > 300
