"""`sentinel train` with training.choose_fusion chooses how its bundle fuses components, from its own
held-out audio (by default), and keeps the recipe when told not to choose."""

import json

import numpy as np
import soundfile as sf
import torch

from sentinel import synth
from tests.conftest import TINY_CONFIG, run_cli


def test_a_bundle_chooses_its_fusion_and_scores_by_it(tmp_path):
    rng = np.random.default_rng(7)
    data = tmp_path / "normal"
    data.mkdir()
    for i in range(26):  # 4 held out: enough to choose by
        sf.write(data / f"n{i:02d}.wav", synth.machine(rng, 3.0), 16000)
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY_CONFIG.replace("fit_windows: 256}", "fit_windows: 256, choose_fusion: true}"))
    run_cli("train", "--data", str(data), "--out", str(tmp_path / "b"), "--config", str(cfg), "--steps", "20",
            check=True)
    fusion = json.loads((tmp_path / "b" / "bundle.json").read_text())["postprocess"]["fusion"]
    scores = fusion["pseudo_score"]
    assert set(scores) == {"recipe", "span-led", "window-led", "clip-led", "long-view", "long-view+level"}
    sure = [k for k, w in fusion["wins"].items() if w >= 0.9]  # better than the recipe beyond the holdout's noise
    assert fusion["name"] == (max(sure, key=scores.get) if sure else "recipe")

    from sentinel.audio import load_audio
    from sentinel.bundle import load_bundle

    bundle = load_bundle(tmp_path / "b")
    res = bundle.scorer("cpu").score_recording(load_audio(data / "n00.wav", 16000))
    weights = fusion.get("weights", bundle.scoring.weights)
    chosen = bundle.post.window_scores(res.components, weights, combine=fusion.get("combine", bundle.scoring.combine))
    assert torch.allclose(res.scores, chosen)

    cfg.write_text(TINY_CONFIG.replace("fit_windows: 256}", "fit_windows: 256, choose_fusion: false}"))
    run_cli("train", "--data", str(data), "--out", str(tmp_path / "c"), "--config", str(cfg), "--steps", "20",
            check=True)
    assert json.loads((tmp_path / "c" / "bundle.json").read_text())["postprocess"]["fusion"] is None
