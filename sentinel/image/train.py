"""Training on normal images: the audio trainer's loop, statistics and bundle, fed with images."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from sentinel.bundle import Bundle
from sentinel.diffusion.schedulers import SchedulerConfig
from sentinel.diffusion.unet import UNetConfig
from sentinel.errors import DataError
from sentinel.features.image_extractor import ImageExtractor
from sentinel.features.image_spec import ImageSpec
from sentinel.image import mvtec
from sentinel.image.io import find_images, load_images
from sentinel.scoring.calibration import Calibration, calibrate
from sentinel.scoring.config import ScoringConfig
from sentinel.scoring.image_scorer import ImageScorer
from sentinel.scoring.patch_memory import PatchMapConfig, PatchMemory
from sentinel.scoring.scorer import DiffusionScorer
from sentinel.training.statistics import fit_statistics
from sentinel.training.trainer import (
    TrainingConfig,
    TrainResult,
    finish,
    fit_denoiser,
    holdout_split,
    start_run,
    training_record,
)


def normal_image_files(data: list[str | Path]) -> list[Path]:
    """Images under each path; an MVTec AD category folder contributes its train/good/ only."""
    files: list[Path] = []
    for d in data:
        files += mvtec.train_images(d) if mvtec.is_category(d) else find_images([d])
    if not files:
        raise DataError(f"{', '.join(map(str, data))}: no images found (png, jpg, ...)")
    return files


def fit_image_map(scorer: DiffusionScorer, fit_images: list[torch.Tensor], holdout_images: list[torch.Tensor],
                  map_config: PatchMapConfig, seed: int = 0) -> tuple[PatchMemory, Calibration | None]:
    """The patch memory of a trained denoiser from normal images ([C, H, W] each), its map scaling
    from held-out normal images, and a 0.99-quantile threshold on those held-out images' scores."""
    spec = scorer.extractor.spec

    def to_input(images: torch.Tensor) -> torch.Tensor:
        return scorer.extractor(images.to(scorer.device, torch.float32))

    memory = PatchMemory.fit(scorer.model, to_input, fit_images, map_config, input_stride=spec.input_stride, seed=seed)
    images_scorer = ImageScorer(scorer, memory)
    held_raw = images_scorer.raw_maps(holdout_images)  # one pass: the scaling and the threshold's scores
    images_scorer.memory.fit_scaling(held_raw)
    memory = images_scorer.memory
    held = images_scorer.scores_from_raw(held_raw)[0].numpy()
    calibration = calibrate(held, 1.0, len(held), quantile=0.99) if len(held) >= 2 else None
    return memory, calibration


def random_crop(image: torch.Tensor, side: int, g: torch.Generator) -> torch.Tensor:
    """A random side x side crop of [C, H, W]; an image shorter than `side` is padded by
    repeating its border first (some inspection images are narrower than a training crop)."""
    h, w = image.shape[-2:]
    if h < side or w < side:
        ph, pw = max(0, side - h), max(0, side - w)
        image = torch.nn.functional.pad(image[None], (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2),
                                        mode="replicate")[0]
        h, w = image.shape[-2:]
    y = int(torch.randint(0, h - side + 1, (1,), generator=g))
    x = int(torch.randint(0, w - side + 1, (1,), generator=g))
    return image[:, y : y + side, x : x + side]


def train_images(
    data: list[str | Path],
    out: str | Path,
    spec: ImageSpec,
    model_config: UNetConfig,
    scheduler_config: SchedulerConfig,
    scoring: ScoringConfig,
    config: TrainingConfig,
    device: torch.device,
    map_config: PatchMapConfig | None = None,
    resume: bool = False,
    log: Callable[..., None] | None = None,
    on_file_error: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train the denoiser on normal images and write a bundle to `out`: square layout, the images
    resized to spec.size; native, random spec.size crops of the images at their own size (the map
    is then made over the whole image). Random horizontal flips are the only augmentation: they
    keep normal textures and objects normal.

    After training: the patch memory from the training images, its map scaling from the held-out
    ones, and a threshold (0.99 quantile) from the held-out images' scores: images the network and
    the memory never saw, so the threshold is not set on scores made too low by memorisation."""
    dist_ctx, log, gen = start_run(device, config, out, log)
    device, rank, world = dist_ctx.device, dist_ctx.rank, dist_ctx.world
    out = Path(out)

    files, images = load_images(normal_image_files(data), spec, on_error=on_file_error)
    if len(files) == 0:
        raise DataError(f"{', '.join(map(str, data))}: none of the images is readable")
    train_list, hold_list = holdout_split(list(range(len(files))), config.holdout_fraction, config.seed)
    train_set, hold_set = [images[i] for i in train_list], [images[i] for i in hold_list]
    log("data", images=len(files), train=len(train_set), holdout=len(hold_set), size=spec.size, layout=spec.layout)
    extractor = ImageExtractor(spec)
    extractor.fit_normalisation(train_set)

    def crops(ims: list[torch.Tensor], g: torch.Generator) -> torch.Tensor:
        return torch.stack([random_crop(im, spec.size, g) for im in ims])

    def sample(batch: int, g: torch.Generator) -> torch.Tensor:
        picked = [train_set[int(i)] for i in torch.randint(0, len(train_set), (batch,), generator=g)]
        pick = torch.stack(picked) if spec.layout == "square" else crops(picked, g)
        flip = torch.rand(batch, generator=g) < 0.5
        with torch.no_grad():
            return extractor(torch.where(flip[:, None, None, None], pick.flip(-1), pick))

    fit = fit_denoiser(sample, spec.input_shape, model_config, scheduler_config, config, dist_ctx, out, gen,
                       resume, log)
    dist_ctx.finish()
    if rank != 0:
        return TrainResult(bundle=None, steps=fit.steps, seconds=fit.seconds, final_loss=fit.final_loss)

    scorer = DiffusionScorer(fit.ema, scheduler_config, extractor.to(device), scoring, device=device)
    fit_set = train_set[: config.fit_windows]
    # the reconstruction statistics are per model-input pixel: at the training crop's size
    g = torch.Generator().manual_seed(config.seed)
    square = (lambda ims: torch.stack(ims)) if spec.layout == "square" else (lambda ims: crops(ims, g))
    stats, post = fit_statistics(scorer, square(fit_set), square(hold_set))
    memory, calibration = fit_image_map(scorer, fit_set, hold_set, map_config or PatchMapConfig(), config.seed)
    log("image map", memory=int(memory.memory.shape[0]), holdout=len(hold_set),
        threshold=round(calibration.threshold, 3) if calibration else None)
    post.calibration = calibration
    bundle = Bundle(model=fit.ema.cpu(), extractor=extractor.cpu(), scheduler=scheduler_config, scoring=scoring,
                    stats=stats.to(torch.device("cpu")), post=post, patch_memory=memory.to(torch.device("cpu")))
    return finish(bundle, training_record(fit, config, data, len(files), device, world), out, log)
