"""The DCASE autoencoder baseline through the same bundle, calibrate, score and eval commands."""

import json
from pathlib import Path

import pytest
import torch
from sklearn.metrics import roc_auc_score

from sentinel.baseline.autoencoder import AutoencoderConfig, DenseAutoencoder, stack_frames
from sentinel.bundle import load_bundle
from tests.conftest import run_cli


def test_architecture_is_the_dcase_baseline():
    model = DenseAutoencoder(AutoencoderConfig())
    linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linear] == [128, 128, 128, 128, 8, 128, 128, 128, 128, 640]
    assert linear[0].in_features == 640
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules()) == 9


def test_frames_are_stacked_in_time_order():
    mel = torch.arange(2 * 7, dtype=torch.float32).reshape(2, 7)  # 2 mel bins, 7 frames
    vectors = stack_frames(mel, 5)
    assert vectors.shape == (3, 10)
    assert vectors[0].tolist() == [0, 7, 1, 8, 2, 9, 3, 10, 4, 11]  # frame 0 (both bins), frame 1, ...


def test_train_calibrate_score_eval(machine_data, tmp_path):
    cfg = tmp_path / "ae.yaml"
    cfg.write_text("device: cpu\nautoencoder: {epochs: 3}\n")
    out = tmp_path / "ae"
    proc = run_cli("train", "--model", "autoencoder", "--data", str(machine_data["normal"]), "--out", str(out),
                   "--config", str(cfg), check=True)
    assert json.loads(proc.stdout)["steps"] > 0
    meta = json.loads((out / "bundle.json").read_text())
    assert meta["model_kind"] == "autoencoder" and meta["features"]["hop_length"] == 512
    assert load_bundle(out).model_kind == "autoencoder"
    run_cli("calibrate", str(out), "--normal", str(machine_data["calib"]), check=True)
    rows = [json.loads(x) for x in run_cli("score", str(out), str(machine_data["test"]), "--format", "jsonl",
                                           check=True).stdout.splitlines()]
    files = [r for r in rows if r["kind"] == "file"]
    assert len(files) == 8 and all(r["score"] > 0 and r["anomaly"] is not None for r in files)
    result = json.loads(run_cli("eval", str(out), "--normal", str(machine_data["test"] / "normal_*"),
                                "--anomalous", str(machine_data["test"] / "anomalous_*"), "--format", "json",
                                check=True).stdout)
    assert result["n_normal"] == 4 and result["n_anomalous"] == 4
    # eval ranks the files by the scores `score` prints for them, and counts its flags at the threshold
    by_file = {r["file"]: r for r in files}
    y = [0 if Path(f).name.startswith("normal") else 1 for f in by_file]
    assert result["auc"] == pytest.approx(roc_auc_score(y, [r["score"] for r in by_file.values()]), abs=1e-6)
    flagged = [r["anomaly"] for r in by_file.values()]
    assert result["tpr_at_threshold"] == pytest.approx(sum(f for f, t in zip(flagged, y, strict=True) if t) / 4)
