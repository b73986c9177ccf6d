"""UrbanSound8K's release layout, as a miniature tree with the exact CSV and generated audio."""

import csv
import json

import numpy as np
import pytest
import soundfile as sf

from sentinel import synth
from sentinel.errors import DataError
from sentinel.training import urbansound8k as us8k
from tests.conftest import run_cli


def make_tree(root, rng):
    """2 air_conditioner clips per fold (44.1 kHz stereo), drilling and dog_bark clips in fold 10."""
    rows = []

    def add(fold, cls, audio, sr=44100):
        name = f"{len(rows)}-{us8k.CLASSES.index(cls)}-0-{fold}.wav"
        (root / "audio" / f"fold{fold}").mkdir(parents=True, exist_ok=True)
        sf.write(root / "audio" / f"fold{fold}" / name, np.stack([audio, audio], axis=1), sr)
        rows.append({"slice_file_name": name, "fsID": len(rows), "start": 0.0, "end": len(audio) / sr,
                     "salience": 1, "fold": fold, "classID": us8k.CLASSES.index(cls), "class": cls})

    def hum(seconds):
        return synth.machine(rng, seconds, sr=44100)

    for fold in range(1, 11):
        for _ in range(2):
            add(fold, "air_conditioner", hum(3.0))
    for _ in range(2):
        add(10, "drilling", synth.inject(rng, hum(3.0), 0.5, "whine", seconds=2.0, sr=44100))
        add(10, "dog_bark", synth.inject(rng, hum(3.0), 1.0, "rattle", seconds=1.0, sr=44100))
    add(10, "dog_bark", synth.inject(rng, hum(0.6), 0.0, "rattle", seconds=0.5, sr=44100))  # shorter than a window
    (root / "metadata").mkdir()
    with open(root / "metadata" / "UrbanSound8K.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=us8k.COLUMNS)
        w.writeheader()
        w.writerows(rows)
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_tree(tmp_path_factory.mktemp("us8k") / "UrbanSound8K", np.random.default_rng(5))


def test_protocol_splits_by_fold_and_class(tree):
    clips = us8k.read_metadata(tree)
    assert len(clips) == 25
    train = us8k.train_files(clips, us8k.parse_classes(["air_conditioner"]))
    assert len(train) == 18 and all("fold10" not in str(p) for p in train)
    assert len(us8k.test_clips(clips)) == 7
    assert us8k.parse_classes(["0,drilling"]) == {0, 4}


def test_train_and_eval_per_class_table(tree, tiny_config, tmp_path):
    out = tmp_path / "b"
    run_cli("train", "--dataset", "urbansound8k", "--root", str(tree), "--normal-classes", "air_conditioner",
            "--out", str(out), "--config", str(tiny_config), check=True)
    proc = run_cli("eval", str(out), "--dataset", "urbansound8k", "--root", str(tree), "--format", "json",
                   check=True)
    r = json.loads(proc.stdout)
    assert r["normal_classes"] == ["air_conditioner"] and r["test_fold"] == 10
    assert (r["n_normal"], r["n_anomalous"]) == (2, 5)  # the short clip is scored, not skipped
    assert set(r["per_class"]) == {"drilling", "dog_bark"}
    assert r["auc"] >= 0.8
    table = run_cli("eval", str(out), "--dataset", "urbansound8k", "--root", str(tree), check=True).stdout
    assert "anomalous class" in table and "drilling" in table


@pytest.mark.parametrize("breakage,expect", [
    ("wrong_root", "no such folder"),
    ("no_csv", "UrbanSound8K.csv: missing"),
    ("bad_columns", "missing columns"),
    ("missing_file", "listed in the metadata but missing"),
])
def test_broken_trees_give_one_line(tmp_path, breakage, expect):
    root = make_tree(tmp_path / "UrbanSound8K", np.random.default_rng(1))
    csv_path = root / "metadata" / "UrbanSound8K.csv"
    if breakage == "wrong_root":
        root = tmp_path / "nope"
    elif breakage == "no_csv":
        csv_path.unlink()
    elif breakage == "bad_columns":
        csv_path.write_text("name,fold\nx.wav,1\n")
    elif breakage == "missing_file":
        next((root / "audio" / "fold3").glob("*.wav")).unlink()
    with pytest.raises(DataError, match=expect):
        us8k.read_metadata(root)
    proc = run_cli("train", "--dataset", "urbansound8k", "--root", str(root), "--out", str(tmp_path / "o"))
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0], proc.stderr
