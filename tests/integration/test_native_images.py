"""Images as they come, through the real CLI: grey images of many sizes and aspect ratios (some
narrower than a training crop), no square resize, maps and masks at each image's own size."""

import json

import numpy as np
import pytest
from PIL import Image

from sentinel.image.defects import GREY_DEFECTS, build_mvtec_category
from tests.conftest import run_cli
from tests.integration.test_image import _texture, train_image_bundle

NATIVE_CONFIG = """
device: cpu
image: {size: 32, layout: native, colour: grey}
image_map: {stride: 4, edge_px: 8, smoothing_px: 1.0, top_fraction: 0.01}
model: {base_channels: 8}
training: {steps: 60, batch_size: 8, warmup_steps: 5, checkpoint_every: 30}
"""
SHAPES = [(72, 104), (96, 64), (80, 80), (56, 120), (64, 24)]  # (height, width)
KINDS = ("stain_dark", "hole_dark")


@pytest.fixture(scope="module")
def tiles(tmp_path_factory):
    root = tmp_path_factory.mktemp("native") / "tiles"
    return build_mvtec_category(_texture(1), root, n_train=40, n_test_good=10, n_per_defect=5, shapes=SHAPES,
                                grey=True, defects={k: GREY_DEFECTS[k] for k in KINDS})


@pytest.fixture(scope="module")
def native_bundle(tiles, tmp_path_factory):
    return train_image_bundle(tiles, NATIVE_CONFIG, tmp_path_factory.mktemp("nativebundle"))


def test_images_keep_their_size_and_are_grey(tiles):
    sizes = {Image.open(p).size for p in (tiles / "test" / "good").glob("*.png")}
    assert sizes == {(w, h) for h, w in SHAPES}
    assert {Image.open(p).mode for p in (tiles / "train" / "good").glob("*.png")} == {"L"}


def test_bundle_reads_grey_images_natively(native_bundle):
    meta = json.loads((native_bundle / "bundle.json").read_text())
    assert meta["features"]["layout"] == "native" and meta["features"]["colour"] == "grey"
    assert meta["model"]["in_channels"] == 4  # Haar DWT of one grey channel
    assert len(meta["image_map"]["edge_mean"]) == 9 and meta["postprocess"]["calibration"]["n_files"] >= 2


def test_maps_come_back_at_each_images_own_size(native_bundle, tiles, tmp_path):
    maps = tmp_path / "maps"
    proc = run_cli("score", str(native_bundle), str(tiles / "test" / "hole_dark"), str(tiles / "test" / "good"),
                   "--maps", str(maps), "--format", "jsonl", check=True)
    rows = [json.loads(x) for x in proc.stdout.splitlines()]
    assert len(rows) == 15 and all(np.isfinite(r["score"]) for r in rows)
    for r in rows:
        w, h = Image.open(r["file"]).size
        with Image.open(r["map"]) as im:
            assert im.size == (2 * w, h)  # the image and its overlay side by side, undistorted


def test_eval_scores_pixels_against_masks_at_native_size(native_bundle, tiles):
    proc = run_cli("eval", str(native_bundle), "--dataset", "mvtec", "--root", str(tiles), "--format", "json",
                   check=True)
    result = json.loads(proc.stdout)
    assert result["n_normal"] == 10 and result["n_anomalous"] == 10
    assert set(result["per_class"]) == set(KINDS)
    assert result["pixel_auc"] > 0.75, result  # dark stains and holes found where the masks put them
    for kind in KINDS:
        assert result["per_class"][kind]["pro"] is not None, kind


def test_eval_prints_a_row_per_defect_kind(native_bundle, tiles):
    proc = run_cli("eval", str(native_bundle), "--dataset", "mvtec", "--root", str(tiles), check=True)
    lines = proc.stdout.splitlines()
    assert any("px AUC" in line and "PRO" in line for line in lines)
    for kind in KINDS:
        assert any(line.startswith(kind) for line in lines), (kind, proc.stdout)
