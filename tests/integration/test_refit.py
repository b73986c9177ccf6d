"""`sentinel refit`: a bundle keeps its trained network and gets its normal statistics fitted again
with another scoring recipe, as a new, uncalibrated bundle."""

import json

import torch

from sentinel.bundle import load_bundle
from tests.conftest import run_cli


def test_refit_keeps_the_network_and_takes_the_new_recipe(tiny_bundle, machine_data, tmp_path):
    cfg = tmp_path / "scoring.yaml"
    cfg.write_text("scoring: {hop_seconds: 0.128, batch_size: 32, span_trim: 0.1, weights: {clip: 1.0}}\n")
    out = tmp_path / "refitted"
    proc = run_cli("refit", str(tiny_bundle), "--data", str(machine_data["normal"]), "--out", str(out),
                   "--config", str(cfg), "--device", "cpu", check=True)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    old, new = load_bundle(tiny_bundle), load_bundle(out)
    assert report["from"] == old.bundle_id and report["bundle_id"] == new.bundle_id != old.bundle_id
    assert new.scoring.span_trim == 0.1 and new.scoring.weights["clip"] == 1.0
    assert new.calibration is None and old.calibration is not None  # old thresholds do not fit new scores
    old_net, new_net = old.model.state_dict(), new.model.state_dict()
    assert all(torch.equal(old_net[k], new_net[k]) for k in old_net)
    assert new.frames is not None

    run_cli("calibrate", str(out), "--normal", str(machine_data["calib"]), "--device", "cpu", check=True)
    scored = run_cli("eval", str(out), "--normal", str(machine_data["test"] / "normal_*.wav"), "--anomalous",
                     str(machine_data["test"] / "anomalous_*.wav"), "--format", "json", "--device", "cpu", check=True)
    assert json.loads(scored.stdout.strip().splitlines()[-1])["auc"] >= 0.9


def test_refit_refuses_to_overwrite_its_source(tiny_bundle, machine_data):
    proc = run_cli("refit", str(tiny_bundle), "--data", str(machine_data["normal"]), "--out", str(tiny_bundle))
    assert proc.returncode != 0
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "refit --out" in err[0] and "new folder" in err[0]
    assert load_bundle(tiny_bundle).calibration is not None  # untouched
