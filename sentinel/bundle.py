"""Model bundles: a folder with `weights.safetensors` and `bundle.json`.

Everything needed to score travels together: network weights, feature normalisation, normal
statistics (tensors, in safetensors) and the model, scheduler, feature and scoring configs
plus the post-processor: component scaling and calibration (JSON). Loading never unpickles
anything. A bundle of an older format is read through `migrate()`, which writes out what it
implied, so the rest of the code knows only today's format.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import hashlib
import json
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
from sentinel.files import atomic_write
from sentinel.scoring.calibration import Calibration
from sentinel.scoring.config import ScoringConfig
from sentinel.scoring.frames import FrameReconstruction
from sentinel.scoring.image_scorer import ImageScorer
from sentinel.scoring.patch_memory import PatchMapConfig, PatchMemory
from sentinel.scoring.postprocess import PostProcessor
from sentinel.scoring.scorer import DiffusionScorer, WindowScorer
from sentinel.scoring.stats import NormalStats

FORMAT = "sentinel-bundle"
FORMAT_VERSION = 2
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
    post: PostProcessor | None = None
    """Component scaling, file aggregate, threshold and verdict (None: the scoring recipe's, unfitted)."""
    training: dict[str, Any] = field(default_factory=dict)
    bundle_id: str = ""
    path: Path | None = None
    patch_memory: PatchMemory | None = None
    """Image bundles: the normal patch memory behind their anomaly maps (None: residual maps, as
    image bundles from before it were scored)."""
    machines: list[str] = field(default_factory=list)
    """Fleet bundles: the machines one network was trained for, in id order (id = position + 1).
    Empty: a bundle of one machine."""
    fleet: dict[str, tuple[NormalStats, PostProcessor]] = field(default_factory=dict)
    """Fleet bundles: each machine's normal statistics and post-processor (its threshold)."""
    machine: str | None = None
    """A fleet bundle seen as one of its machines (`for_machine`): whose `stats` and `post` these are."""
    frames: FrameReconstruction | None = None
    """Diffusion bundles: the frame view (the DCASE autoencoder trained beside the network) behind
    the frames component; None: a bundle without it (trained before it, or with training.frames off)."""

    def for_machine(self, name: str | None) -> Bundle:
        """The bundle as machine `name` scores it (a fleet's; None for a bundle of one machine).
        It shares the fleet's post-processors: calibrating it and `write_meta` keep every machine."""
        where = f"bundle {self.path or '(unsaved)'}"
        if not self.machines:
            if name is None:
                return self
            raise BundleError(f"{where}: trained on one machine, it knows no machine {name!r}; drop --machine "
                              "(or sources[].machine), or train a fleet with --data NAME=DIR ...")
        if name is None:
            raise BundleError(f"{where}: a fleet bundle of {', '.join(self.machines)}; say which machine the "
                              "sound is (--machine NAME, NAME=DIR, or sources[].machine)")
        if name not in self.fleet:
            raise BundleError(f"{where}: no machine {name!r} in this fleet; it knows {', '.join(self.machines)}")
        stats, post = self.fleet[name]
        return dataclasses.replace(self, stats=stats, post=post, machine=name)

    def machine_id(self, name: str) -> int:
        """The id the fleet network knows machine `name` by (1-based; 0 is the null id)."""
        return self.machines.index(name) + 1

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

    def __post_init__(self) -> None:
        if self.post is None:
            self.post = PostProcessor(self.scoring)

    @property
    def calibration(self) -> Calibration | None:
        assert self.post is not None
        return self.post.calibration

    @calibration.setter
    def calibration(self, value: Calibration | None) -> None:
        assert self.post is not None
        self.post.calibration = value

    @property
    def threshold(self) -> float | None:
        assert self.post is not None
        return self.post.threshold

    @property
    def model_kind(self) -> str:
        return "autoencoder" if isinstance(self.model, DenseAutoencoder) else "diffusion"

    def scorer(self, device: torch.device | str = "cpu", scoring: ScoringConfig | None = None) -> WindowScorer:
        # A scorer moves its modules to its device: off the CPU it gets copies, so the bundle stays
        # on the CPU and can serve scorers on several devices.
        model, extractor, frames = self.model, self.extractor, self.frames
        if torch.device(device).type != "cpu":
            model, extractor, frames = copy.deepcopy(model), copy.deepcopy(extractor), copy.deepcopy(frames)
        assert self.post is not None
        scoring = scoring or self.scoring
        post = dataclasses.replace(self.post, config=scoring)
        if isinstance(model, DenseAutoencoder):
            assert isinstance(extractor, FeatureExtractor)
            return AutoencoderScorer(model, extractor, scoring, post, device=device)
        if self.machines:
            if self.machine is None:
                self.for_machine(None)  # raises: which machine?
            fleet = {self.machine_id(n): (st, dataclasses.replace(pp, config=scoring))
                     for n, (st, pp) in self.fleet.items()}
            return DiffusionScorer(model, self.scheduler, extractor, scoring, self.stats, post, device=device,
                                   machine=self.machine_id(self.machine or ""), fleet=fleet, frames=frames)
        diffusion = DiffusionScorer(model, self.scheduler, extractor, scoring, self.stats, post, device=device,
                                    frames=frames)
        return ImageScorer(diffusion, self.patch_memory) if self.patch_memory is not None else diffusion


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
        # a fleet's machines keep theirs under "fleet"; its own is the uncalibrated recipe's
        "postprocess": (PostProcessor(bundle.scoring) if bundle.machine else bundle.post).to_dict()
        if bundle.post else None,
        "image_map": bundle.patch_memory.meta() if bundle.patch_memory else None,
        "frames": bundle.frames.config.to_dict() if bundle.frames is not None else None,
        "fleet": {"machines": bundle.machines, "postprocess": {n: pp.to_dict() for n, (_, pp) in bundle.fleet.items()}}
        if bundle.machines else None,
        "training": bundle.training,
    }


def save_bundle(bundle: Bundle, path: str | Path) -> Path:
    """Write the bundle folder (weights first, JSON last, each atomically)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v for k, v in bundle.model.state_dict().items()}
    tensors.update({f"features.{k}": v for k, v in bundle.extractor.named_buffers() if k in _NORMALISATION})
    if bundle.stats is not None:  # a fleet's are its first machine's: a copy (safetensors refuses shared memory)
        tensors.update({k: v.clone() if bundle.machines else v for k, v in bundle.stats.tensors().items()})
    if bundle.patch_memory is not None:
        tensors.update(bundle.patch_memory.tensors())
    if bundle.frames is not None:
        tensors.update(bundle.frames.tensors())
    if bundle.post is not None and bundle.machine is None:
        tensors.update(bundle.post.tensors())
    for name, (stats, post) in bundle.fleet.items():
        tensors.update({f"machine.{name}.{k}": v for k, v in (stats.tensors() | post.tensors()).items()})
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    atomic_write(path / WEIGHTS, lambda p: save_file(tensors, str(p), metadata={"format": FORMAT}))
    bundle.bundle_id = hashlib.sha256((path / WEIGHTS).read_bytes()).hexdigest()[:12]
    bundle.path = path
    write_meta(bundle)
    return path


def write_meta(bundle: Bundle) -> None:
    """Rewrite only bundle.json (e.g. after calibration); the weights stay as they are."""
    assert bundle.path is not None
    text = json.dumps(_meta(bundle), indent=2) + "\n"
    atomic_write(bundle.path / META, lambda p: p.write_text(text))


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


def migrate(meta: dict) -> dict:
    """bundle.json of format 1 -> format 2, with what a version-1 bundle implied written out:
    features it predates take their old behaviour (LEGACY_FEATURES), a scoring recipe without a
    level tolerance scored every dB of level, one without a file aggregate ranked by the peak
    window, a span fitted before the per-count scale spoke from half a span, and the component
    scaling and calibration move into the post-processor."""
    if meta.get("format_version") != 1:
        return meta
    out = {k: v for k, v in meta.items() if k not in ("normal_stats", "calibration")}
    if (meta.get("modality") or "audio") == "audio" and isinstance(meta.get("features"), dict):
        out["features"] = {**LEGACY_FEATURES, **meta["features"]}
    scoring = {"level_tolerance_db": 0.0, "file_aggregate": "max", **(meta.get("scoring") or {})}
    stats = meta.get("normal_stats") or {}
    if "span" in stats.get("component_mean", {}) and stats.get("span_count_mean") is None:
        hop = scoring.get("hop_seconds", ScoringConfig.hop_seconds)
        windows = max(1, round(scoring.get("span_seconds", ScoringConfig.span_seconds) / hop))
        scoring["span_min_seconds"] = max(2, windows // 2) * hop
    out["scoring"] = scoring
    out["postprocess"] = {"component_mean": stats.get("component_mean", {}),
                          "component_std": stats.get("component_std", {}),
                          "span_count_mean": stats.get("span_count_mean"),
                          "span_count_std": stats.get("span_count_std"),
                          "calibration": meta.get("calibration")}
    out["format_version"] = 2
    return out


def load_bundle(path: str | Path) -> Bundle:
    """Load a bundle (an older format through `migrate`); refuse one this version cannot read."""
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
    if meta.get("format") == FORMAT:
        meta = migrate(meta)
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"bundle {path}: format {meta.get('format')!r} version {meta.get('format_version')!r}, "
            f"this Sentinel reads {FORMAT!r} version {FORMAT_VERSION}; retrain it with this version"
        )
    modality = meta.get("modality", "audio")
    if modality not in ("audio", "image"):
        raise BundleError(f"bundle {path}: modality {modality!r} is neither audio nor image; retrain it")
    spec = _typed(FeatureSpec if modality == "audio" else ImageSpec, meta.get("features"), "features", path)
    if spec.digest() != meta.get("feature_hash"):
        raise BundleError(
            f"bundle {path}: feature spec does not match its hash ({meta.get('feature_hash')} stored, "
            f"{spec.digest()} computed); the bundle was edited or is damaged, retrain it"
        )
    kind = meta.get("model_kind", "diffusion")
    if kind not in ("diffusion", "autoencoder"):
        raise BundleError(f"bundle {path}: model_kind {kind!r} is neither diffusion nor autoencoder; retrain it")
    model_cfg = _typed(UNetConfig if kind == "diffusion" else AutoencoderConfig, meta.get("model"), "model", path)
    scheduler = _typed(SchedulerConfig, meta.get("scheduler"), "scheduler", path)
    # a recipe saved before span_trim averaged its span plainly, and one saved before clip_shape_only
    # kept the clip's level within the tolerance: their statistics were fitted so
    scoring = _typed(ScoringConfig, {"span_trim": 0.0, "clip_shape_only": False, **(meta.get("scoring") or {})},
                     "scoring", path)
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
        stats = NormalStats.from_tensors(tensors) if kind == "diffusion" else None
        post = PostProcessor.from_dict(scoring, meta.get("postprocess") or {}, tensors)
        patch_memory = None
        if modality == "image" and meta.get("image_map"):
            map_config = _typed(PatchMapConfig, meta["image_map"].get("config"), "image_map.config", path)
            stride = spec.input_stride
            patch_memory = PatchMemory.from_parts(tensors, meta["image_map"], map_config, stride)
        machines, fleet = _fleet(meta.get("fleet"), scoring, tensors, path)
        frames = None
        if kind == "diffusion" and modality == "audio" and meta.get("frames"):
            frames_cfg = _typed(AutoencoderConfig, meta["frames"], "frames", path)
            frames = FrameReconstruction.from_tensors(frames_cfg, spec.sample_rate, tensors)
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
        post=post,
        training=meta.get("training", {}),
        bundle_id=meta.get("bundle_id", ""),
        path=path,
        patch_memory=patch_memory,
        machines=machines,
        fleet=fleet,
        frames=frames,
    )


def _fleet(meta: dict | None, scoring: ScoringConfig, tensors: dict[str, torch.Tensor], path: Path
           ) -> tuple[list[str], dict[str, tuple[NormalStats, PostProcessor]]]:
    """A fleet bundle's machines and their statistics and post-processors ([], {}: one machine)."""
    if not meta:
        return [], {}
    machines = [str(m) for m in meta.get("machines") or []]
    posts = meta.get("postprocess") or {}
    fleet = {}
    for name in machines:
        prefix = f"machine.{name}."
        own = {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}
        if name not in posts or "stats.residual_mean" not in own:
            raise BundleError(f"bundle {path}: fleet machine {name!r} has no statistics (damaged, or edited); "
                              "retrain the bundle")
        fleet[name] = (NormalStats.from_tensors(own), PostProcessor.from_dict(scoring, posts[name], own))
    return machines, fleet
