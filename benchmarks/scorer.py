#!/usr/bin/env python3
"""Scorer micro-benchmark: windows per second against batch size, DDIM steps and model width,
with a profile of where the time goes, as ratios to a naive baseline measured in the same run.

usage: python benchmarks/scorer.py [--bundle DIR] [--device cpu|cuda] [--batches 1 8 16 32 64]
                                   [--widths 16 32 64] [--seconds 3]

The naive baseline is the reference path of the method, one window at a time: DDIM
reconstruction with `--reference-steps` steps per noise level, no batching, contiguous (NCHW)
tensors. Sentinel's default is the fast path: x0 predicted in one network pass for all noise
levels at once, windows batched, channels_last. Without --bundle a model of the default
configuration is built with random weights (speed does not depend on the weights); its normal
statistics are fitted on noise so that the whole scoring path runs.

Real-time factor (RTF) = seconds of audio per second of compute at the daemon's hop (0.5 s):
RTF 32 means 32 concurrent 16 kHz streams kept up in real time.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import statistics
import time
from pathlib import Path

import torch

from sentinel.baseline.autoencoder import AutoencoderConfig
from sentinel.bundle import Bundle, load_bundle
from sentinel.diffusion.unet import UNet
from sentinel.features.extractor import FeatureExtractor
from sentinel.scoring.frames import FrameReconstruction
from sentinel.scoring.scorer import DiffusionScorer
from sentinel.training.config import TrainConfig
from sentinel.training.statistics import MEMORY, fit_statistics

HOP_S = 0.5


def default_bundle(base: int | None = None) -> Bundle:
    cfg = TrainConfig()
    model_cfg = dataclasses.replace(cfg.model, in_channels=cfg.features.channels,
                                    base_channels=base or cfg.model.base_channels)
    torch.manual_seed(0)
    model, extractor = UNet(model_cfg).eval(), FeatureExtractor(cfg.features)
    # a training level, so that each window's level is moved as a trained bundle's are (its cost is timed)
    frames = FrameReconstruction(AutoencoderConfig(), cfg.features.sample_rate, level=-30.0).eval() \
        if cfg.training.frames else None
    scorer = DiffusionScorer(model, cfg.scheduler, extractor, cfg.scoring, frames=frames)
    noise = torch.randn(96, cfg.features.window_samples) * 0.1
    clips = [torch.randn(cfg.features.sample_rate * 6) * 0.1 for _ in range(8)]  # for the span statistics
    stats, post = fit_statistics(scorer, noise[:64], noise[64:], span_recordings=(clips[:6], clips[6:]))
    return Bundle(model=model, extractor=extractor, scheduler=cfg.scheduler, scoring=cfg.scoring, stats=stats,
                  post=post, frames=frames)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def rate(fn, n_windows: int, seconds: float, device: torch.device) -> float:
    """Median windows/s over repeats of fn() (which scores n_windows), after one warm-up."""
    fn()
    sync(device)
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(times) < 3 or (time.perf_counter() < deadline and len(times) < 50):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return n_windows / statistics.median(times)


def naive_reference(scorer: DiffusionScorer, windows: torch.Tensor) -> None:
    """One window at a time, NCHW, through the same scorer (the path before any batching)."""
    for w in windows:
        scorer.score(w[None])


def profile(scorer: DiffusionScorer, windows: torch.Tensor, device: torch.device, seconds: float) -> dict[str, float]:
    """Seconds per window in each stage of DiffusionScorer.score at this batch size."""
    stats = scorer.stats
    assert stats is not None
    w = windows.to(device)
    stages: dict[str, float] = {}
    with torch.inference_mode():
        x0 = scorer.extractor(w).contiguous(memory_format=scorer.memory_format)
        recons = scorer.reconstruct(x0)
        raw = scorer.raw(w)
        comps = scorer.components(raw, stats)
        b = w.shape[0]
        nan_span = torch.full((b,), float("nan"), device=device)  # windows scored alone have no span
        stages["copy to device"] = 1 / rate(lambda: windows.to(device), b, seconds, device)
        stages["features (log-mel, DWT)"] = 1 / rate(lambda: scorer.extractor(w), b, seconds, device)
        stages["network: reconstruction"] = 1 / rate(lambda: scorer.reconstruct(x0), b, seconds, device)
        stages["network: encoder features"] = 1 / rate(
            lambda: scorer.model.encode(x0, scorer.config.feature_timestep), b, seconds, device)
        stages["residuals"] = 1 / rate(
            lambda: torch.stack([(r - x0).pow(2).mean(1) for r in recons]).mean(0), b, seconds, device)
        stages["components + combine"] = 1 / rate(
            lambda: scorer.post.window_scores({**scorer.components(raw, stats), "span": nan_span}), b, seconds, device)
        stages["copy to host"] = 1 / rate(lambda: {k: v.cpu() for k, v in comps.items()}, b, seconds, device)
    whole = 1 / rate(lambda: scorer.score(windows), b, seconds, device)
    stages["python and glue (rest)"] = max(0.0, whole - sum(stages.values()))
    stages["total"] = whole
    return stages


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", type=Path, help="trained bundle (default: default-size model, random weights)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batches", type=int, nargs="*", default=[1, 4, 8, 16, 32, 64, 128])
    ap.add_argument("--steps", type=int, nargs="*", default=[1, 2, 5], help="DDIM steps per strength")
    ap.add_argument("--widths", type=int, nargs="*", default=[16, 32, 64], help="model base channels")
    ap.add_argument("--reference-steps", type=int, default=10,
                    help="DDIM steps per noise level of the naive reference path (DDAD uses 10)")
    ap.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--machine", help="fleet bundles: score as this machine, and also time batches that mix "
                    "every machine of the fleet (one pass for all of them, as the daemon scores a fleet's sources)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    bundle = load_bundle(a.bundle).for_machine(a.machine) if a.bundle else default_bundle()
    spec = bundle.features
    gen = torch.Generator().manual_seed(0)
    windows = torch.randn(max(a.batches), spec.window_samples, generator=gen) * 0.1
    base = bundle.model.config.base_channels
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, model base {base} "
          f"({sum(p.numel() for p in bundle.model.parameters()) / 1e6:.2f} M params), "
          f"{'bundle ' + str(a.bundle) if a.bundle else 'random weights'}, input {spec.input_shape}")

    fast = bundle.scorer(device)
    if bundle.machines:
        ids = [i % len(bundle.machines) + 1 for i in range(max(a.batches))]
        for b in a.batches:
            mixed = rate(lambda b=b: fast.score(windows[:b], machines=ids[:b]), b, a.seconds, device)
            own = rate(lambda b=b: fast.score(windows[:b]), b, a.seconds, device)
            print(f"fleet of {len(bundle.machines)}, batch {b}: {own:.1f} windows/s as {a.machine}, {mixed:.1f} "
                  f"windows/s with every machine in the batch ({mixed / own:.2f}x)")
    ref_cfg = dataclasses.replace(bundle.scoring, steps=a.reference_steps)
    reference = DiffusionScorer(copy.deepcopy(bundle.model), bundle.scheduler, bundle.extractor, ref_cfg,
                                bundle.stats, bundle.post, device=device, channels_last=False,
                                frames=copy.deepcopy(bundle.frames))
    n_naive = 4 if device.type == "cpu" else 16
    naive = rate(lambda: naive_reference(reference, windows[:n_naive]), n_naive, a.seconds, device)
    print(f"fast path precision: {fast.pipeline.autocast_dtype or torch.float32} network passes, channels_last, "
          f"default batch {fast.batch_size}")
    print(f"\nnaive reference (1 window at a time, {a.reference_steps} DDIM steps x "
          f"{len(bundle.scoring.strengths)} strengths, NCHW): {naive:.1f} windows/s, RTF {naive * HOP_S:.1f}")
    naive_fast = rate(lambda: naive_reference(fast, windows[:n_naive]), n_naive, a.seconds, device)
    print(f"fast path, 1 window at a time: {naive_fast:.1f} windows/s ({naive_fast / naive:.1f}x naive)")

    print(f"\n{'batch':>6} {'windows/s':>10} {'RTF':>7} {'x naive':>8}")
    best = (0.0, 0)
    for b in a.batches:
        fast.batch_size = b
        r = rate(lambda b=b: fast.score(windows[:b]), b, a.seconds, device)
        best = max(best, (r, b))
        print(f"{b:>6} {r:10.1f} {r * HOP_S:7.1f} {r / naive:8.1f}")
    best_rate, best_batch = best
    fast.batch_size = best_batch
    bw = windows[:best_batch]
    state = fast.new_span_state()
    with_span = rate(lambda: fast.score(bw, [state] * best_batch), best_batch, a.seconds, device)
    print(f"\nwith the span component (one stream's history, batch {best_batch}): {with_span:.1f} windows/s "
          f"= {with_span / best_rate:.2f} x without")

    if bundle.stats is not None and bundle.stats.neighbour_memory is not None:
        # the most training spans a bundle keeps (a memory drawn at random: speed does not depend on it)
        dims = bundle.stats.neighbour_memory.shape[1]
        rates = {}
        for name, memory in (("with", torch.randn(MEMORY, dims, generator=gen)), ("without", None)):
            sc = DiffusionScorer(bundle.model, bundle.scheduler, bundle.extractor, bundle.scoring,
                                 dataclasses.replace(bundle.stats, neighbour_memory=memory), bundle.post,
                                 device=device, frames=bundle.frames)
            sc.batch_size = best_batch
            st = sc.new_span_state()
            rates[name] = rate(lambda sc=sc, st=st: sc.score(bw, [st] * best_batch), best_batch, a.seconds, device)
        print(f"with the neighbours component ({MEMORY} training spans, the span on, batch {best_batch}): "
              f"{rates['with']:.1f} windows/s = {rates['with'] / rates['without']:.2f} x without it")

    if bundle.frames is not None:
        plain = dataclasses.replace(bundle, frames=None).scorer(device)
        plain.batch_size = best_batch
        without = rate(lambda: plain.score(bw), best_batch, a.seconds, device)
        print(f"with the frame view (the autoencoder beside the network, batch {best_batch}): {best_rate:.1f} "
              f"windows/s = {best_rate / without:.2f} x without it ({without:.1f})")

    print(f"\nDDIM steps per strength (batch {best_batch}):")
    print(f"{'steps':>6} {'windows/s':>10} {'RTF':>7} {'x naive':>8}")
    for steps in a.steps:
        sc = bundle.scorer(device, dataclasses.replace(fast.config, steps=steps))
        sc.batch_size = best_batch
        r = rate(lambda sc=sc: sc.score(bw), best_batch, a.seconds, device)
        print(f"{steps:>6} {r:10.1f} {r * HOP_S:7.1f} {r / naive:8.1f}")

    if not a.bundle:
        print(f"\nmodel width (base channels, batch {best_batch}, 1 step):")
        print(f"{'base':>6} {'params M':>9} {'windows/s':>10} {'RTF':>7}")
        for width in a.widths:
            bd = default_bundle(width)
            sc = bd.scorer(device)
            sc.batch_size = best_batch
            r = rate(lambda sc=sc: sc.score(bw), best_batch, a.seconds, device)
            print(f"{width:>6} {sum(p.numel() for p in bd.model.parameters()) / 1e6:9.2f} {r:10.1f} "
                  f"{r * HOP_S:7.1f}")

    prof = profile(fast, bw, device, a.seconds)
    total = prof["total"]
    print(f"\nwhere the time goes (batch {best_batch}, per window):")
    for k, v in prof.items():
        print(f"  {k:<28} {v * 1000:8.2f} ms  {100 * v / total:5.1f} %")
    print(f"\nbest: batch {best_batch}, {best_rate:.1f} windows/s = RTF {best_rate * HOP_S:.1f}, "
          f"{best_rate / naive:.1f}x the naive reference path")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
