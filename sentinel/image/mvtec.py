"""The MVTec AD layout: <category>/train/good, <category>/test/<defect>/, and
<category>/ground_truth/<defect>/<name>_mask.png for every defective test image."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sentinel.errors import DataError
from sentinel.image.io import IMAGE_EXTENSIONS

GOOD = "good"


@dataclass(frozen=True)
class TestImage:
    path: Path
    defect: str
    """'good' for normal images, else the defect folder's name."""
    mask: Path | None
    """Ground-truth mask; None for good images (all background) or a defect image without one."""

    @property
    def anomalous(self) -> bool:
        return self.defect != GOOD


def _images(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)


def is_category(root: str | Path) -> bool:
    return (Path(root) / "train" / GOOD).is_dir()


def train_images(root: str | Path) -> list[Path]:
    root = Path(root)
    folder = root / "train" / GOOD
    if not root.is_dir():
        raise DataError(f"{root}: no such folder; give an MVTec AD category folder (with train/good/)")
    if not folder.is_dir():
        raise DataError(f"{root}: no train/good/ folder; is this an MVTec AD category (e.g. mvtec/bottle)?")
    files = _images(folder)
    if not files:
        raise DataError(f"{folder}: no images (png, jpg, ...)")
    return files


def test_images(root: str | Path) -> list[TestImage]:
    """Every test image with its defect type and mask; a defect image whose mask is missing is kept
    (it still counts for image AUROC) with mask None, and reported by the caller."""
    root = Path(root)
    test = root / "test"
    if not test.is_dir():
        raise DataError(f"{root}: no test/ folder; is this an MVTec AD category (e.g. mvtec/bottle)?")
    out = []
    for defect_dir in sorted(d for d in test.iterdir() if d.is_dir()):
        for f in _images(defect_dir):
            mask = None
            if defect_dir.name != GOOD:
                candidate = root / "ground_truth" / defect_dir.name / f"{f.stem}_mask.png"
                mask = candidate if candidate.is_file() else None
            out.append(TestImage(f, defect_dir.name, mask))
    if not any(t.anomalous for t in out) or all(t.anomalous for t in out):
        raise DataError(f"{test}: needs both good/ and at least one defect folder with images")
    return out
