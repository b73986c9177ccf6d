"""Training the DCASE autoencoder baseline on normal recordings, into a Sentinel bundle."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch

from sentinel.baseline.autoencoder import FEATURES, SCORING, AutoencoderConfig, stack_frames
from sentinel.bundle import Bundle
from sentinel.diffusion.schedulers import SchedulerConfig
from sentinel.features.extractor import FeatureExtractor
from sentinel.training.data import load_recordings
from sentinel.training.frames import fit_autoencoder
from sentinel.training.trainer import TrainResult, finish


def train_autoencoder(
    data: list[str | Path],
    out: str | Path,
    config: AutoencoderConfig,
    device: torch.device,
    seed: int = 0,
    max_minutes: float | None = None,
    log: Callable[..., None] | None = None,
    on_file_error: Callable[[str], None] | None = None,
) -> TrainResult:
    """DCASE recipe: every 5-frame vector of every normal recording, `epochs` shuffled passes, Adam, MSE."""
    log = log or (lambda event, **kw: None)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    extractor = FeatureExtractor(FEATURES)  # unit normalisation: the baseline reads raw dB, as DCASE does
    recs = load_recordings(data, FEATURES, on_error=on_file_error)
    with torch.inference_mode():
        vectors = torch.cat([stack_frames(extractor.log_mel(r.wave), config.frames) for r in recs])
    log("data", recordings=len(recs), vectors=len(vectors))
    started = time.monotonic()
    model, steps, loss_avg = fit_autoencoder(vectors, config, device, gen, max_minutes, log)
    seconds = time.monotonic() - started
    bundle = Bundle(model=model, extractor=extractor, scheduler=SchedulerConfig(), scoring=SCORING, stats=None)
    return finish(bundle, {"model": "autoencoder", "steps": steps, "seconds": round(seconds, 1),
                           "final_loss": loss_avg, "recordings": len(recs), "data": [str(d) for d in data],
                           "device": str(device), "config": config.to_dict(), "seed": seed}, out, log)
