"""Training loop: epsilon-prediction on random normal windows, EMA weights, checkpoints."""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, TypeVar

import torch
import torch.nn.functional as F
from pydantic import ConfigDict, Field
from tqdm import tqdm

from sentinel.bundle import Bundle, save_bundle
from sentinel.diffusion.schedulers import NoiseSchedule, SchedulerConfig
from sentinel.diffusion.unet import UNet, UNetConfig
from sentinel.errors import BundleError
from sentinel.features.extractor import FeatureExtractor
from sentinel.features.spec import FeatureSpec
from sentinel.files import atomic_write
from sentinel.scoring.config import ScoringConfig
from sentinel.scoring.postprocess import PostProcessor
from sentinel.scoring.scorer import DiffusionScorer
from sentinel.scoring.stats import NormalStats
from sentinel.training.data import CropSampler, FleetSampler, Recording, load_recordings
from sentinel.training.frames import train_frames
from sentinel.training.fusion import choose_fusion
from sentinel.training.statistics import fit_statistics
from sentinel.windows import sliding_windows

CHECKPOINT = "checkpoint.pt"
T = TypeVar("T")
ID_DROPOUT = 0.1
"""Share of a fleet's training windows denoised under the null id: the unconditional model."""
CLASSIFY_WEIGHT = 0.1
"""Weight of the machine-classification loss beside the denoising loss (fleet networks)."""
MIN_TRAIN_GROUPS = 2
"""Whole groups are held out only while training keeps at least this many (holdout_split)."""


@dataclass(frozen=True)
class TrainingConfig:
    """Optimisation settings. Command-line flags override steps, max_minutes and seed."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    steps: Annotated[
        int, Field(ge=1, description="Optimiser steps (the budget that ends first wins). 300 (~2 min on 2 CPU "
                   "cores): on three real sets 1,500 steps bought +0.002, -0.011 and -0.068 AUC (docs/quality.md "
                   "round 7).")
    ] = 300
    max_minutes: Annotated[
        float | None, Field(gt=0, description="Wall-clock budget in minutes; null = no limit.")
    ] = None
    batch_size: Annotated[int, Field(ge=1, description="Windows per optimiser step.")] = 32
    learning_rate: Annotated[float, Field(gt=0, description="AdamW peak learning rate.")] = 1e-3
    warmup_steps: Annotated[int, Field(ge=0, description="Linear learning-rate warm-up steps.")] = 100
    weight_decay: Annotated[float, Field(ge=0, description="AdamW weight decay.")] = 0.0
    ema_decay: Annotated[float, Field(ge=0, lt=1, description="EMA decay of the weights that get saved.")] = 0.995
    grad_clip: Annotated[float, Field(gt=0, description="Gradient-norm clipping.")] = 1.0
    timestep_fraction: Annotated[
        float,
        Field(gt=0, le=1, description="Train on t < fraction * T only: scoring never noises further."),
    ] = 0.5
    checkpoint_every: Annotated[int, Field(ge=1, description="Steps between checkpoints (for --resume).")] = 250
    holdout_fraction: Annotated[
        float, Field(ge=0, lt=1, description="Share of recordings held out to normalise score components.")
    ] = 0.15
    fit_windows: Annotated[
        int, Field(ge=16, description="Most windows used to fit residual and embedding statistics.")
    ] = 1024
    choose_fusion: Annotated[
        bool, Field(description="Choose how components are fused (the recipe, the long-span, window or clip view "
                    "leading, the long view alone) from the held-out recordings and pseudo-anomalies made of them "
                    "(sentinel.training.fusion); a candidate replaces the recipe only where it ranks better in 90 % "
                    "of bootstrap resamples. Over 14 real UrbanSound8K sets 0.697 / 0.685 AUC / pAUC against the "
                    "recipe's 0.677 / 0.669, at the recipe's false alarms (docs/quality.md round 11); a "
                    "UrbanSound8K bundle's refit with it took 21-75 s in all.")
    ] = True
    holdout_groups: Annotated[
        bool, Field(description="Hold out whole groups of recordings (files whose names share their first number: "
                    "a source id, a recording date) rather than single files, so that held-out audio is as "
                    "new as tomorrow's; bundles trained before it keep their split (docs/quality.md round 7).")
    ] = True
    frames: Annotated[
        bool, Field(description="Train the frame view beside the network: the DCASE autoencoder on the same "
                    "recordings (~20 s per 100 clips on 2 CPU cores), scored as the frames component "
                    "(sentinel.scoring.frames).")
    ] = True
    seed: Annotated[int, Field(description="Seed of data order, noise and initial weights.")] = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class TrainResult:
    bundle: Bundle | None
    """None on the processes of a distributed run other than rank 0."""
    steps: int
    seconds: float
    final_loss: float


@dataclass
class _Distributed:
    """Process-group plumbing for torchrun; a no-op for a single process."""

    device: torch.device
    rank: int = 0
    world: int = 1
    owns_group: bool = False

    @classmethod
    def start(cls, device: torch.device) -> _Distributed:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return cls(device)
        import torch.distributed as dist

        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        owns = not dist.is_initialized()
        if owns:
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        return cls(device, dist.get_rank(), dist.get_world_size(), owns)

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        if self.world == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def agree_to_stop(self, mine: bool) -> bool:
        """Every rank stops at the same step, when any wants to (e.g. its wall-clock budget ran out)."""
        if self.world == 1:
            return mine
        import torch.distributed as dist

        flag = torch.tensor([1.0 if mine else 0.0], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def finish(self) -> None:
        if self.owns_group:
            import torch.distributed as dist

            dist.barrier()
            dist.destroy_process_group()


def holdout_split(recs: list[T], fraction: float, seed: int, groups: list[str] | None = None
                  ) -> tuple[list[T], list[T]]:
    """(train, held out): a seeded share of the items held out to normalise score components.

    With `groups` (one key per item), whole groups are held out: slices of one source recording
    held out beside their siblings look far more normal than the next machine or the next day
    will, so components scaled by them (the span most: a Gaussian over a handful of sources)
    alarm on every new source (docs/quality.md round 7). Groups are taken in a seeded order until
    the share is reached, skipping any that would hold out more than twice it, and never leaving
    training fewer than two groups: with two sessions, holding one out means the network never
    hears it and the threshold is set by the one it never heard (the real fan, round 7). Items
    whose groups are all single, or too few to spare one, are split one by one, as without groups."""
    if len(recs) < 2 or fraction == 0:
        return recs, recs  # too little data to hold any out: normalise on what we trained on
    n_hold = min(len(recs) - 1, max(1, round(fraction * len(recs))))
    if groups is not None:
        keys = list(dict.fromkeys(groups))
        if MIN_TRAIN_GROUPS < len(keys) < len(recs):
            order = torch.randperm(len(keys), generator=torch.Generator().manual_seed(seed)).tolist()
            size = Counter(groups)
            held: set[str] = set()
            total = 0
            for i in order:
                if total >= n_hold:
                    break
                if total + size[keys[i]] <= max(2 * n_hold, 1) and len(keys) - len(held) - 1 >= MIN_TRAIN_GROUPS:
                    held.add(keys[i])
                    total += size[keys[i]]
            if held:
                return ([r for r, g in zip(recs, groups, strict=True) if g not in held],
                        [r for r, g in zip(recs, groups, strict=True) if g in held])
    order = torch.randperm(len(recs), generator=torch.Generator().manual_seed(seed)).tolist()
    return [recs[i] for i in order[n_hold:]], [recs[i] for i in order[:n_hold]]


def split_recordings(recs: list[Recording], config: TrainingConfig) -> tuple[list[Recording], list[Recording]]:
    """(train, held out) as training splits recordings (and refit splits them again)."""
    groups = [r.group for r in recs] if config.holdout_groups else None
    return holdout_split(recs, config.holdout_fraction, config.seed, groups)


def _windows(recs: list[Recording], spec: FeatureSpec, limit: int, seed: int) -> torch.Tensor:
    hop = spec.window_samples // 2
    w = torch.cat([sliding_windows(r.wave, spec.window_samples, hop).samples for r in recs])
    if w.shape[0] > limit:
        w = w[torch.randperm(w.shape[0], generator=torch.Generator().manual_seed(seed))[:limit]]
    return w


def _fit_stats(scorer: DiffusionScorer, train_recs: list[Recording], holdout: list[Recording],
               config: TrainingConfig) -> tuple[NormalStats, PostProcessor]:
    spec = scorer.extractor.spec
    stats, post = fit_statistics(
        scorer,
        _windows(train_recs, spec, config.fit_windows, config.seed),
        _windows(holdout, spec, config.fit_windows, config.seed + 1),
        span_recordings=([r.wave for r in train_recs], [r.wave for r in holdout]),
    )
    if config.choose_fusion:
        post.fusion, _ = choose_fusion(scorer, [r.wave for r in holdout], config.seed)
    return stats.to(torch.device("cpu")), post


def refit(bundle: Bundle, data: list[str | Path] | dict[str, list[str | Path]], scoring: ScoringConfig,
          device: torch.device, on_file_error: Callable[[str], None] | None = None) -> Bundle:
    """The same trained network with other scoring settings (strengths, steps, ...).

    Residual and component statistics depend on the scoring settings, so they are fitted again
    on the normal recordings, split exactly as training split them. Calibration is dropped:
    thresholds of the old scores do not apply to the new ones. A bundle trained before the frame
    view (or before its gain tolerance) gets one, trained on the same training split (unless its
    config turned `frames` off). A fleet bundle takes `data` as {machine: folders}, every machine
    of the fleet, and gets each machine's statistics again (one frame view for them all, as
    training makes it).
    """
    groups = dict(data) if isinstance(data, dict) else {"": list(data)}
    if bundle.machines and set(groups) != set(bundle.machines):
        raise BundleError(f"bundle {bundle.path}: a fleet of {', '.join(bundle.machines)}; give each machine's "
                          "normal recordings as NAME=DIR, every machine once")
    if not bundle.machines and len(groups) > 1:
        raise BundleError(f"bundle {bundle.path}: a bundle of one machine; give its recordings without names")
    # A bundle trained before holdout_groups existed split recording by recording.
    config = TrainingConfig(**{"holdout_groups": False, **bundle.training.get("config", {})})
    splits = {name: split_recordings(load_recordings(paths, bundle.features, on_error=on_file_error), config)
              for name, paths in groups.items()}
    frames = bundle.frames
    if config.frames and (frames is None or frames.level is None):
        frames = train_frames([r.wave for tr, _ in splits.values() for r in tr], bundle.features.sample_rate, device,
                              config.seed, window_samples=bundle.features.window_samples,
                              tolerance_db=scoring.level_tolerance_db)
    fleet = {}
    for name, (train_recs, holdout) in splits.items():
        machine = bundle.machine_id(name) if bundle.machines else None
        scorer = DiffusionScorer(bundle.model, bundle.scheduler, bundle.extractor, scoring, device=device,
                                 machine=machine, frames=frames)
        fleet[name] = _fit_stats(scorer, train_recs, holdout, config)
    bundle.model.cpu()
    bundle.extractor.cpu()
    if bundle.machines:  # a fleet's own post-processor is the uncalibrated recipe's, as training leaves it
        return dataclasses.replace(bundle, scoring=scoring, stats=fleet[bundle.machines[0]][0],
                                   post=PostProcessor(scoring), fleet=fleet, machine=None, path=None, bundle_id="",
                                   frames=_cpu(frames))
    stats, post = fleet[""]
    return dataclasses.replace(bundle, scoring=scoring, stats=stats, post=post, path=None, bundle_id="",
                               frames=_cpu(frames))


def _lr_factor(step: int, warmup: int) -> float:
    return min(1.0, (step + 1) / warmup) if warmup else 1.0


def start_run(device: torch.device, config: TrainingConfig, out: str | Path,
              log: Callable[..., None] | None) -> tuple[_Distributed, Callable[..., None], torch.Generator]:
    """What every training run does first: join the process group (under torchrun), check the
    batch splits over it, silence logs off rank 0, make the output folder, seed everything."""
    dist_ctx = _Distributed.start(device)
    if config.batch_size % dist_ctx.world:
        raise BundleError(f"training.batch_size {config.batch_size} must divide evenly over {dist_ctx.world} "
                          "processes")
    Path(out).mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    return dist_ctx, (log or _quiet) if dist_ctx.rank == 0 else _quiet, torch.Generator().manual_seed(config.seed)


def _quiet(event: str, **kw) -> None:
    """The log of every process but rank 0, and of callers that give none."""


@dataclass
class FitResult:
    ema: UNet
    """The EMA weights, in eval mode: what gets saved."""
    steps: int
    seconds: float
    final_loss: float


Sample = Callable[[int, torch.Generator], "torch.Tensor | tuple[torch.Tensor, torch.Tensor]"]


def fit_denoiser(
    sample: Sample,
    input_shape: tuple[int, int, int],
    model_config: UNetConfig,
    scheduler_config: SchedulerConfig,
    config: TrainingConfig,
    dist_ctx: _Distributed,
    out: Path,
    gen: torch.Generator,
    resume: bool = False,
    log: Callable[..., None] = lambda event, **kw: None,
) -> FitResult:
    """Train an epsilon-predicting UNet on batches from `sample(batch, generator)` (model inputs
    [batch, C, H, W], any modality). Checkpoints to `out` (rank 0); resumes from there.

    A fleet (`model_config.num_machines` > 0) samples (inputs, machine ids) instead, id 0 for
    outliers (sound that is none of the machines): the decoder denoises each window as its machine
    (as the null id for a share ID_DROPOUT, and outliers are not denoised at all), and the
    encoder's classifier learns whose each noised window is."""
    device, rank, world = dist_ctx.device, dist_ctx.rank, dist_ctx.world
    c, h, w = input_shape
    model_config = dataclasses.replace(model_config, in_channels=c)
    if h % model_config.downsampling or w % model_config.downsampling:
        raise BundleError(
            f"model.channel_mults: {len(model_config.channel_mults)} scales need an input divisible by "
            f"{model_config.downsampling}, but the features give {h}x{w}; use fewer scales or larger windows"
        )
    model = UNet(model_config).to(device)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    net = dist_ctx.wrap(model)
    opt = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    schedule = NoiseSchedule(scheduler_config)
    t_hi = max(1, math.ceil(config.timestep_fraction * schedule.num_train_timesteps))

    step, elapsed, loss_avg = 0, 0.0, float("nan")
    ckpt_path = out / CHECKPOINT
    if resume:
        if not ckpt_path.is_file():
            raise BundleError(f"{ckpt_path}: no checkpoint to resume from; train without --resume")
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=True)
        model.load_state_dict(ckpt["model"])
        ema.load_state_dict(ckpt["ema"])
        opt.load_state_dict(ckpt["optimizer"])
        gen.set_state(ckpt["generator"])
        step, elapsed = int(ckpt["step"]), float(ckpt["elapsed"])
        log("resumed", step=step)

    def checkpoint() -> None:
        if rank != 0:
            return
        state = {"model": model.state_dict(), "ema": ema.state_dict(), "optimizer": opt.state_dict(),
                 "generator": gen.get_state(), "step": step, "elapsed": elapsed}
        atomic_write(ckpt_path, lambda tmp: torch.save(state, tmp))

    budget_s = config.max_minutes * 60 if config.max_minutes else math.inf
    started = time.monotonic() - elapsed
    model.train()
    bar = tqdm(total=config.steps, initial=step, desc="train", unit="step", disable=None if rank == 0 else True,
               dynamic_ncols=True)
    while step < config.steps and not dist_ctx.agree_to_stop(time.monotonic() - started >= budget_s):
        for group in opt.param_groups:
            group["lr"] = config.learning_rate * _lr_factor(step, config.warmup_steps)
        drawn = sample(config.batch_size, gen)
        x0, labels = drawn if isinstance(drawn, tuple) else (drawn, None)
        x0 = x0.to(device)
        t = torch.randint(0, t_hi, (x0.shape[0],), generator=gen).to(device)
        noise = torch.randn(x0.shape, generator=gen).to(device)
        mine = slice(rank * config.batch_size // world, (rank + 1) * config.batch_size // world)
        x0, t, noise = x0[mine], t[mine], noise[mine]
        xt = schedule.add_noise(x0, noise, t)
        if labels is None:
            loss = F.mse_loss(net(xt, t), noise)
        else:
            dropped = torch.rand(labels.shape, generator=gen) < ID_DROPOUT
            labels = labels.to(device)[mine]
            cond = torch.where(dropped.to(device)[mine], 0, labels)
            eps, logits = net(xt, t, cond, with_logits=True)
            machine_rows = (labels > 0).float()
            per_row = (eps - noise).pow(2).flatten(1).mean(1)
            loss = (per_row * machine_rows).sum() / machine_rows.sum().clamp_min(1) + \
                CLASSIFY_WEIGHT * F.cross_entropy(logits, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        opt.step()
        # Warm the EMA up so that short CPU runs are not dominated by the random initial weights.
        decay = min(config.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
                pe.lerp_(pm, 1 - decay)
        step += 1
        value = loss.item()
        loss_avg = value if math.isnan(loss_avg) else 0.98 * loss_avg + 0.02 * value
        bar.update(1)
        bar.set_postfix(loss=f"{loss_avg:.4f}")
        elapsed = time.monotonic() - started
        if step % config.checkpoint_every == 0:
            checkpoint()
            log("checkpoint", step=step, loss=round(loss_avg, 5), seconds=round(elapsed, 1))
    bar.close()
    elapsed = time.monotonic() - started
    checkpoint()
    log("trained", steps=step, loss=round(loss_avg, 5), seconds=round(elapsed, 1))
    return FitResult(ema, step, elapsed, loss_avg)


def train(
    data: list[str | Path] | dict[str, list[str | Path]],
    out: str | Path,
    features: FeatureSpec,
    model_config: UNetConfig,
    scheduler_config: SchedulerConfig,
    scoring: ScoringConfig,
    config: TrainingConfig,
    device: torch.device,
    resume: bool = False,
    log: Callable[..., None] | None = None,
    on_file_error: Callable[[str], None] | None = None,
    outliers: list[str | Path] | None = None,
) -> TrainResult:
    """Train a denoiser on the normal recordings under `data` and write a bundle to `out`.

    `data` as {machine name: folders} trains one fleet bundle for several machines (a network
    that knows which machine it denoises and tells them apart, statistics per machine); with
    `outliers`, sound that is none of them, it also learns what is not any of them. A single
    named machine without outliers is a bundle of one, as a plain list of folders gives.

    Under `torchrun` (WORLD_SIZE > 1) every process draws the same batch from the same seeded
    generator and trains on its own slice of it; DDP averages the gradients, so N processes take
    exactly the steps one process would with the whole batch. Only rank 0 logs and writes.
    """
    dist_ctx, log, gen = start_run(device, config, out, log)
    device, rank, world = dist_ctx.device, dist_ctx.rank, dist_ctx.world
    out = Path(out)
    groups = dict(data) if isinstance(data, dict) else {"": list(data)}
    if outliers and not any(groups):
        raise BundleError("train --outliers: name the machines they are not (--data NAME=DIR ...)")
    fleet = len(groups) > 1 or bool(outliers)
    splits = {}
    for name, paths in groups.items():
        recs = load_recordings(paths, features, on_error=on_file_error)
        splits[name] = split_recordings(recs, config)
        log("data", **({"machine": name} if name else {}), recordings=len(recs), train=len(splits[name][0]),
            holdout=len(splits[name][1]), holdout_sources=len({r.group for r in splits[name][1]}),
            seconds=round(sum(r.wave.numel() for r in recs) / features.sample_rate, 1))

    extractor = FeatureExtractor(features)
    with torch.inference_mode():
        log_mels = {name: [extractor.log_mel(r.wave) for r in tr] for name, (tr, _) in splits.items()}
        outlier_mels = [extractor.log_mel(r.wave) for r in load_recordings(outliers, features, on_file_error)] \
            if outliers else []
    extractor.fit_normalisation([m for ms in log_mels.values() for m in ms])
    # crops are normalised as windows: level is per window
    if fleet:
        model_config = dataclasses.replace(model_config, num_machines=len(groups))
        fleet_sampler = FleetSampler([CropSampler(ms, features.window_frames) for ms in log_mels.values()],
                                     CropSampler(outlier_mels, features.window_frames) if outlier_mels else None)

        def sample(b: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
            crops, ids = fleet_sampler.sample(b, g)
            return extractor.to_input(extractor.normalise(crops)), ids
    else:
        sampler = CropSampler(next(iter(log_mels.values())), features.window_frames)

        def sample(b: int, g: torch.Generator) -> torch.Tensor:  # type: ignore[misc]
            return extractor.to_input(extractor.normalise(sampler.sample(b, g)))

    fit = fit_denoiser(sample, features.input_shape, model_config, scheduler_config, config, dist_ctx, out, gen,
                       resume, log)
    dist_ctx.finish()
    if rank != 0:
        return TrainResult(bundle=None, steps=fit.steps, seconds=fit.seconds, final_loss=fit.final_loss)

    extractor = extractor.to(device)
    # One frame view for the whole fleet: every machine's training recordings (never the held-out
    # ones, which must stay unheard to scale its component honestly).
    frames = train_frames([r.wave for tr, _ in splits.values() for r in tr], features.sample_rate, device,
                          config.seed, log=log, window_samples=features.window_samples,
                          tolerance_db=scoring.level_tolerance_db) if config.frames else None
    n_recs = sum(len(tr) + (len(ho) if ho is not tr else 0) for tr, ho in splits.values())
    if not fleet:
        train_recs, holdout = next(iter(splits.values()))
        scorer = DiffusionScorer(fit.ema, scheduler_config, extractor, scoring, device=device, frames=frames)
        stats, post = _fit_stats(scorer, train_recs, holdout, config)
        bundle = Bundle(model=fit.ema.cpu(), extractor=extractor.cpu(), scheduler=scheduler_config,
                        scoring=scoring, stats=stats, post=post, frames=_cpu(frames))
    else:
        per_machine = {}
        for i, (name, (train_recs, holdout)) in enumerate(splits.items(), start=1):
            scorer = DiffusionScorer(fit.ema, scheduler_config, extractor, scoring, device=device, machine=i,
                                     frames=frames)
            per_machine[name] = _fit_stats(scorer, train_recs, holdout, config)
            log("statistics", machine=name)
        bundle = Bundle(model=fit.ema.cpu(), extractor=extractor.cpu(), scheduler=scheduler_config, scoring=scoring,
                        stats=next(iter(per_machine.values()))[0], machines=list(groups), fleet=per_machine,
                        frames=_cpu(frames))
    record = training_record(fit, config, [p for ps in groups.values() for p in ps], n_recs, device, world)
    if fleet:
        record["machines"] = {name: [str(p) for p in ps] for name, ps in groups.items()}
        record["outliers"] = [str(p) for p in outliers or []]
    return finish(bundle, record, out, log)



def _cpu(module: T) -> T:
    """A module back on the CPU, where bundles keep theirs (None stays None)."""
    return module.cpu() if isinstance(module, torch.nn.Module) else module  # type: ignore[return-value]


def finish(bundle: Bundle, record: dict, out: str | Path, log: Callable[..., None]) -> TrainResult:
    """The end of every training run (audio, images, the autoencoder): keep the record of how the
    network was trained (steps, seconds, final_loss, ...) in the bundle, write it, say where."""
    bundle.training = record
    save_bundle(bundle, out)
    log("bundle", path=str(out), bundle_id=bundle.bundle_id)
    return TrainResult(bundle=bundle, steps=record["steps"], seconds=record["seconds"],
                       final_loss=record["final_loss"])


def training_record(fit: FitResult, config: TrainingConfig, data: list, n_items: int, device: torch.device,
                    world: int) -> dict:
    """What bundle.json keeps about how its network was trained."""
    return {
        "steps": fit.steps,
        "seconds": round(fit.seconds, 1),
        "final_loss": fit.final_loss,
        "recordings": n_items,
        "data": [str(d) for d in data],
        "device": str(device),
        "world_size": world,
        "batch_per_process": config.batch_size // world,
        "config": config.to_dict(),
    }
