"""UrbanSound8K, as released: `metadata/UrbanSound8K.csv` and `audio/fold1` ... `audio/fold10`.

Anomaly protocol: some classes are normal (default: air_conditioner), the others anomalous.
Train on the normal clips of every fold but the test fold; evaluate on the test fold (default
10): its normal-class clips against each anomalous class.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sentinel.errors import DataError

CLASSES = ("air_conditioner", "car_horn", "children_playing", "dog_bark", "drilling", "engine_idling", "gun_shot",
           "jackhammer", "siren", "street_music")
COLUMNS = ("slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class")
DEFAULT_NORMAL = ("air_conditioner",)


@dataclass(frozen=True)
class Clip:
    path: Path
    fold: int
    class_id: int
    class_name: str


def read_metadata(root: str | Path) -> list[Clip]:
    """Every clip listed in the CSV; the CSV, its columns and every file it names must exist."""
    root = Path(root)
    csv_path = root / "metadata" / "UrbanSound8K.csv"
    if not root.is_dir():
        raise DataError(f"{root}: no such folder; --root must be the UrbanSound8K folder (with metadata/ and audio/)")
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: missing; --root must be the UrbanSound8K folder (with metadata/ and audio/)")
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing_cols = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing_cols:
            raise DataError(f"{csv_path}: not the UrbanSound8K metadata: missing columns {', '.join(missing_cols)}")
        clips = []
        for line, row in enumerate(reader, start=2):
            try:
                fold, class_id = int(row["fold"]), int(row["classID"])
            except (TypeError, ValueError):
                raise DataError(f"{csv_path}:{line}: fold and classID must be integers "
                                f"(got {row['fold']!r}, {row['classID']!r})") from None
            if not 1 <= fold <= 10 or not 0 <= class_id < len(CLASSES):
                raise DataError(f"{csv_path}:{line}: fold {fold} or classID {class_id} out of range")
            clips.append(Clip(root / "audio" / f"fold{fold}" / row["slice_file_name"], fold, class_id, row["class"]))
    if not clips:
        raise DataError(f"{csv_path}: lists no clips")
    absent = [c.path for c in clips if not c.path.is_file()]
    if absent:
        raise DataError(f"{absent[0]}: listed in the metadata but missing ({len(absent)} of {len(clips)} files "
                        "missing); is the download complete?")
    return clips


def parse_classes(names: Iterable[str]) -> set[int]:
    """Class names or IDs, comma-separated or repeated, to class IDs."""
    out = set()
    for item in (x.strip() for name in names for x in name.split(",")):
        if not item:
            continue
        if item.isdigit() and int(item) < len(CLASSES):
            out.add(int(item))
        elif item in CLASSES:
            out.add(CLASSES.index(item))
        else:
            raise DataError(f"--normal-classes {item!r}: unknown class; use one of {', '.join(CLASSES)} or 0-9")
    if not out or len(out) == len(CLASSES):
        raise DataError("--normal-classes: choose at least one class and leave at least one anomalous")
    return out


def train_files(clips: list[Clip], normal: set[int], test_fold: int = 10) -> list[Path]:
    return [c.path for c in clips if c.class_id in normal and c.fold != test_fold]


def test_clips(clips: list[Clip], test_fold: int = 10) -> list[Clip]:
    return [c for c in clips if c.fold == test_fold]
