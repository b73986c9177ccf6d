"""The image path end to end through the real CLI: an MVTec AD-layout tree made from a generated
texture with synthetic defects -> train -> calibrate -> score with maps -> eval with pixel AUROC."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sentinel.image.defects import GREY_DEFECTS, build_mvtec_category
from tests.conftest import run_cli

TINY_IMAGE_CONFIG = """
device: cpu
image: {size: 64}
model: {base_channels: 8}
training: {steps: 60, batch_size: 8, warmup_steps: 5, checkpoint_every: 30}
"""


def _texture(seed: int = 0, size: int = 256) -> np.ndarray:
    """Woven stripes with grain: regular enough that defects stand out, varied enough to learn."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    weave = 0.5 + 0.2 * np.sin(xx / 3.0) * np.sin(yy / 5.0) + 0.1 * np.sin((xx + yy) / 7.0)
    return np.clip(weave + rng.normal(0, 0.05, (size, size)), 0, 1)


@pytest.fixture(scope="module")
def category(tmp_path_factory):
    root = tmp_path_factory.mktemp("mvtec") / "weave"
    return build_mvtec_category(_texture(), root, crop=64, n_train=40, n_test_good=8, n_per_defect=4)


def train_image_bundle(data: Path, config_text: str, tmp: Path) -> Path:
    """`sentinel train --modality image` on `data` with this config; the bundle's folder."""
    cfg = tmp / "train.yaml"
    cfg.write_text(config_text)
    out = tmp / "bundle"
    run_cli("train", "--modality", "image", "--data", str(data), "--out", str(out), "--config", str(cfg),
            check=True)
    return out


@pytest.fixture(scope="module")
def image_bundle(category, tmp_path_factory):
    return train_image_bundle(category, TINY_IMAGE_CONFIG, tmp_path_factory.mktemp("imgbundle"))


def test_layout_is_mvtec(category):
    assert len(list((category / "train" / "good").glob("*.png"))) == 40
    for defect in ("scratch", "stain", "hole"):
        images = sorted((category / "test" / defect).glob("*.png"))
        masks = sorted((category / "ground_truth" / defect).glob("*_mask.png"))
        assert [m.name for m in masks] == [f"{p.stem}_mask.png" for p in images]


def test_bundle_is_an_image_bundle(image_bundle):
    meta = json.loads((image_bundle / "bundle.json").read_text())
    assert meta["modality"] == "image" and meta["features"]["size"] == 64
    assert meta["model"]["in_channels"] == 12  # Haar DWT of RGB: 4 bands x 3 colours
    calibration = meta["postprocess"]["calibration"]
    assert calibration["method"] == "quantile"  # set by training on its held-out crops
    assert meta["image_map"]["config"]["grid"] == 32 and calibration["n_files"] >= 2


def test_calibrating_on_training_images_warns(image_bundle, category, tmp_path):
    import shutil

    copy = tmp_path / "bundle"
    shutil.copytree(image_bundle, copy)
    proc = run_cli("calibrate", str(copy), "--normal", str(category / "train" / "good"), check=True)
    assert "training images" in proc.stderr


def test_score_writes_maps_over_images(image_bundle, category, tmp_path):
    maps = tmp_path / "maps"
    proc = run_cli("score", str(image_bundle), str(category / "test" / "hole"), "--maps", str(maps),
                   "--format", "jsonl", check=True)
    rows = [json.loads(x) for x in proc.stdout.splitlines()]
    assert len(rows) == 4 and all(r["kind"] == "image" and np.isfinite(r["score"]) for r in rows)
    for r in rows:
        with Image.open(r["map"]) as im:
            assert im.size == (128, 64)  # the image and its overlay side by side


def test_eval_reports_image_and_pixel_auroc(image_bundle, category):
    proc = run_cli("eval", str(image_bundle), "--dataset", "mvtec", "--root", str(category), "--format", "json",
                   check=True)
    result = json.loads(proc.stdout)
    assert result["n_normal"] == 8 and result["n_anomalous"] == 12
    assert set(result["per_class"]) == {"scratch", "stain", "hole"}
    assert 0.5 < result["auc"] <= 1.0  # even a 60-step model tells holes and stains from weave
    assert result["pixel_auc"] is not None and 0.5 < result["pixel_auc"] <= 1.0


def test_maps_find_grey_level_defects(image_bundle, tmp_path):
    """Defects that keep the texture's own grey levels, two of which remove texture (a blur, a flat
    dark stain): their pixels rank above normal texture, and a threshold set on held-out crops
    passes most normal ones (the same weave, so the same training crops and bundle)."""
    kinds = ("stain_dark", "blur", "hole_dark")
    root = build_mvtec_category(_texture(), tmp_path / "grey", crop=64, n_train=40, n_test_good=8, n_per_defect=4,
                                defects={k: GREY_DEFECTS[k] for k in kinds})
    proc = run_cli("eval", str(image_bundle), "--dataset", "mvtec", "--root", str(root), "--format", "json",
                   check=True)
    result = json.loads(proc.stdout)
    assert set(result["per_class"]) == set(kinds)
    assert result["pixel_auc"] > 0.85, result
    assert result["pro"] > 0.6, result
    for kind in kinds:
        assert result["per_class"][kind]["pixel_auc"] > 0.75, (kind, result["per_class"][kind])


def test_broken_image_is_named_and_skipped(image_bundle, category, tmp_path):
    bad = tmp_path / "imgs"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"not a png")
    good = sorted((category / "test" / "good").glob("*.png"))[0]
    (bad / "ok.png").write_bytes(good.read_bytes())
    proc = run_cli("score", str(image_bundle), str(bad))
    assert proc.returncode == 0
    assert "broken.png" in proc.stderr and "not a readable image" in proc.stderr
    assert "ok.png" in proc.stdout


@pytest.mark.parametrize(
    "args, expect",
    [
        (["--dataset", "mvtec", "--root", "/nonexistent/cat"], "no test/ folder"),
        (["--dataset", "mvtec"], "--dataset mvtec needs --root"),
    ],
)
def test_eval_errors_are_one_line(image_bundle, args, expect):
    proc = run_cli("eval", str(image_bundle), *args)
    assert proc.returncode != 0
    assert expect in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_train_on_a_folder_that_is_not_a_category(tmp_path):
    proc = run_cli("train", "--modality", "image", "--data", str(tmp_path), "--out", str(tmp_path / "b"))
    assert proc.returncode != 0 and "no images found" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_daemon_refuses_an_image_bundle(image_bundle, tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"daemon: {{bundle: {image_bundle}}}\nsources: [{{name: mic, kind: microphone}}]\n")
    proc = run_cli("run", "--config", str(cfg), timeout=60)
    assert proc.returncode != 0 and "an image model" in proc.stderr
