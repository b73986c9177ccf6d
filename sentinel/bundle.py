"""Model bundles: a folder with `weights.safetensors` and `bundle.json`.

Everything needed to score travels together: network weights, feature normalisation, normal
statistics (tensors, in safetensors) and the model, scheduler, feature and scoring configs
plus calibration (JSON). Loading never unpickles anything.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import TypeAdapter, ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from sentinel import __version__
from sentinel.baseline.autoencoder import AutoencoderConfig, AutoencoderScorer, DenseAutoencoder
from sentinel.diffusion.schedulers import SchedulerConfig
from sentinel.diffusion.unet import UNet, UNetConfig
from sentinel.errors import BundleError
from sentinel.features.extractor import FeatureExtractor
from sentinel.features.image_extractor import ImageExtractor
from sentinel.features.image_spec import ImageSpec
from sentinel.features.spec import LEGACY_FEATURES, FeatureSpec
from sentinel.scoring.calibration import Calibration
from sentinel.scoring.image_scorer import ImageScorer
from sentinel.scoring.patch_memory import PatchMapConfig, PatchMemory
from sentinel.scoring.scorer import DiffusionScorer, NormalStats, ScoringConfig, WindowScorer

FORMAT = "sentinel-bundle"
FORMAT_VERSION = 1
WEIGHTS = "weights.safetensors"
META = "bundle.json"
_NORMALISATION = ("bin_mean", "bin_std", "channel_mean", "channel_std")


@dataclass
class Bundle:
    model: UNet | DenseAutoencoder
    extractor: FeatureExtractor | ImageExtractor
    scheduler: SchedulerConfig
    scoring: ScoringConfig
    stats: NormalStats | None
    """None for the autoencoder baseline, which scores raw reconstruction error."""
    calibration: Calibration | None = None
    training: dict[str, Any] = field(default_factory=dict)
    bundle_id: str = ""
    path: Path | None = None
    patch_memory: PatchMemory | None = None
    """Image bundles: the normal patch memory behind their anomaly maps (None: residual maps, as
    image bundles from before it were scored)."""

    @property
    def features(self) -> FeatureSpec:
        """The audio feature spec (audio bundles; see `modality`)."""
        assert isinstance(self.extractor, FeatureExtractor), "an image bundle has no audio features"
        return self.extractor.spec

    @property
    def modality(self) -> str:
        return "image" if isinstance(self.extractor, ImageExtractor) else "audio"

    @property
    def spec(self) -> FeatureSpec | ImageSpec:
        return self.extractor.spec

    @property
    def threshold(self) -> float | None:
        return self.calibration.threshold if self.calibration else None

    @property
    def model_kind(self) -> str:
        return "autoencoder" if isinstance(self.model, DenseAutoencoder) else "diffusion"

    def scorer(self, device: torch.device | str = "cpu", scoring: ScoringConfig | None = None) -> WindowScorer:
        # A scorer moves its modules to its device: off the CPU it gets copies, so the bundle stays
        # on the CPU and can serve scorers on several devices.
        model, extractor = self.model, self.extractor
        if torch.device(device).type != "cpu":
            model, extractor = copy.deepcopy(model), copy.deepcopy(extractor)
        if isinstance(model, DenseAutoencoder):
            assert isinstance(extractor, FeatureExtractor)
            return AutoencoderScorer(model, extractor, scoring or self.scoring, device=device)
        diffusion = DiffusionScorer(model, self.scheduler, extractor, scoring or self.scoring, self.stats,
                                    device=device)
        return ImageScorer(diffusion, self.patch_memory) if self.patch_memory is not None else diffusion


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def _meta(bundle: Bundle) -> dict:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "bundle_id": bundle.bundle_id,
        "sentinel_version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "modality": bundle.modality,
        "model_kind": bundle.model_kind,
        "features": bundle.spec.to_dict(),
        "feature_hash": bundle.spec.digest(),
        "model": bundle.model.config.to_dict(),
        "scheduler": bundle.scheduler.to_dict(),
        "scoring": bundle.scoring.to_dict(),
        "normal_stats": bundle.stats.json() if bundle.stats else None,
        "calibration": bundle.calibration.to_dict() if bundle.calibration else None,
        "image_map": bundle.patch_memory.meta() if bundle.patch_memory else None,
        "training": bundle.training,
    }


def save_bundle(bundle: Bundle, path: str | Path) -> Path:
    """Write the bundle folder (weights first, JSON last, each atomically)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v for k, v in bundle.model.state_dict().items()}
    tensors.update({f"features.{k}": v for k, v in bundle.extractor.named_buffers() if k in _NORMALISATION})
    if bundle.stats is not None:
        tensors.update(bundle.stats.tensors())
    if bundle.patch_memory is not None:
        tensors.update(bundle.patch_memory.tensors())
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    _atomic_write(path / WEIGHTS, lambda p: save_file(tensors, str(p), metadata={"format": FORMAT}))
    bundle.bundle_id = hashlib.sha256((path / WEIGHTS).read_bytes()).hexdigest()[:12]
    bundle.path = path
    write_meta(bundle)
    return path


def write_meta(bundle: Bundle) -> None:
    """Rewrite only bundle.json (e.g. after calibration); the weights stay as they are."""
    assert bundle.path is not None
    text = json.dumps(_meta(bundle), indent=2) + "\n"
    _atomic_write(bundle.path / META, lambda p: p.write_text(text))


def _typed(kind: type, value: Any, where: str, path: Path):
    try:
        return TypeAdapter(kind).validate_python(value)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(x) for x in err["loc"])
        raise BundleError(f"bundle {path}: {where}.{key}: {err['msg']}; retrain the bundle with this version") from None


def _check_tensors(tensors: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], path: Path) -> None:
    """One line naming the first tensor that is missing or has another shape than the config implies."""
    for name, ref in expected.items():
        got = tensors.get(name)
        if got is None:
            raise BundleError(f"bundle {path}: {WEIGHTS} has no tensor {name!r} (damaged, or from another "
                              "version); retrain the bundle")
        if tuple(got.shape) != tuple(ref.shape):
            raise BundleError(f"bundle {path}: {WEIGHTS} tensor {name!r} has shape {tuple(got.shape)}, its "
                              f"{META} implies {tuple(ref.shape)}; the files do not belong together, retrain it")


def load_bundle(path: str | Path, expect_features: FeatureSpec | None = None) -> Bundle:
    """Load a bundle; refuse one from another format version or with a different feature spec."""
    path = Path(path)
    meta_path, weights_path = path / META, path / WEIGHTS
    if not path.is_dir():
        raise BundleError(f"bundle {path}: no such folder; train one with `sentinel train --out {path}`")
    if not meta_path.is_file() or not weights_path.is_file():
        raise BundleError(f"bundle {path}: missing {META} or {WEIGHTS}; is training finished?")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise BundleError(f"bundle {path}: {META} is not valid JSON ({e}); restore or retrain it") from None
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"bundle {path}: format {meta.get('format')!r} version {meta.get('format_version')!r}, "
            f"this Sentinel reads {FORMAT!r} version {FORMAT_VERSION}; retrain it with this version"
        )
    modality = meta.get("modality", "audio")
    if modality not in ("audio", "image"):
        raise BundleError(f"bundle {path}: modality {modality!r} is neither audio nor image; retrain it")
    features = meta.get("features")
    if modality == "audio" and isinstance(features, dict):
        features = {**LEGACY_FEATURES, **features}  # keys this bundle predates: the behaviour it was trained with
    spec = _typed(FeatureSpec if modality == "audio" else ImageSpec, features, "features", path)
    if spec.digest() != meta.get("feature_hash"):
        raise BundleError(
            f"bundle {path}: feature spec does not match its hash ({meta.get('feature_hash')} stored, "
            f"{spec.digest()} computed); the bundle was edited or is damaged, retrain it"
        )
    if expect_features is not None and modality != "audio":
        raise BundleError(f"bundle {path}: an image model; the daemon scores audio, train it on recordings")
    if expect_features is not None and expect_features != spec:
        diff = [k for k, v in spec.to_dict().items() if expect_features.to_dict()[k] != v]
        raise BundleError(
            f"bundle {path}: its features differ from the configured ones in {', '.join(diff)}; "
            "use the bundle's features or retrain"
        )
    kind = meta.get("model_kind", "diffusion")
    if kind not in ("diffusion", "autoencoder"):
        raise BundleError(f"bundle {path}: model_kind {kind!r} is neither diffusion nor autoencoder; retrain it")
    model_cfg = _typed(UNetConfig if kind == "diffusion" else AutoencoderConfig, meta.get("model"), "model", path)
    scheduler = _typed(SchedulerConfig, meta.get("scheduler"), "scheduler", path)
    # Bundles from before the level tolerance scored every dB of level change: keep them as they were.
    scoring = _typed(ScoringConfig, {"level_tolerance_db": 0.0, **(meta.get("scoring") or {})}, "scoring", path)
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise BundleError(f"bundle {path}: {WEIGHTS} is damaged or truncated ({msg}); restore it from a backup "
                          "or retrain the bundle") from None
    model = UNet(model_cfg) if kind == "diffusion" else DenseAutoencoder(model_cfg)
    extractor = FeatureExtractor(spec) if modality == "audio" else ImageExtractor(spec)
    expected = {f"model.{k}": v for k, v in model.state_dict().items()}
    expected |= {f"features.{k}": v for k, v in extractor.named_buffers() if k in _NORMALISATION}
    if kind == "diffusion":
        grid = torch.empty(spec.input_shape[-2:])
        expected |= {"stats.residual_mean": grid, "stats.residual_std": grid}
    _check_tensors(tensors, expected, path)
    try:
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        for name, buf in extractor.named_buffers():
            if name in _NORMALISATION:
                buf.copy_(tensors[f"features.{name}"])
        stats = NormalStats.from_parts(tensors, meta["normal_stats"]) if kind == "diffusion" else None
        calibration = Calibration.from_dict(meta["calibration"]) if meta.get("calibration") else None
        patch_memory = None
        if modality == "image" and meta.get("image_map"):
            map_config = _typed(PatchMapConfig, meta["image_map"].get("config"), "image_map.config", path)
            stride = spec.size // spec.input_shape[-1]
            patch_memory = PatchMemory.from_parts(tensors, meta["image_map"], map_config, stride)
    except KeyError as e:
        raise BundleError(f"bundle {path}: {WEIGHTS} or {META} lacks {e.args[0]!r}; retrain the bundle") from None
    except (RuntimeError, TypeError, ValueError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise BundleError(f"bundle {path}: weights do not match its config ({msg}); retrain it") from None
    return Bundle(
        model=model.eval(),
        extractor=extractor,
        scheduler=scheduler,
        scoring=scoring,
        stats=stats,
        calibration=calibration,
        training=meta.get("training", {}),
        bundle_id=meta.get("bundle_id", ""),
        path=path,
        patch_memory=patch_memory,
    )
