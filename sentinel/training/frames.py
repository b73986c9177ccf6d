"""Training the frame view of a diffusion bundle (sentinel.scoring.frames): the DCASE autoencoder
on the same training recordings, with the baseline's own recipe (also `sentinel train --model
autoencoder`, which trains it alone)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from sentinel.baseline.autoencoder import AutoencoderConfig, DenseAutoencoder
from sentinel.scoring.frames import FrameReconstruction


def fit_autoencoder(vectors: torch.Tensor, config: AutoencoderConfig, device: torch.device, gen: torch.Generator,
                    max_minutes: float | None = None, log: Callable[..., None] | None = None
                    ) -> tuple[DenseAutoencoder, int, float]:
    """(model in eval mode on the CPU, steps, smoothed final loss): `epochs` shuffled passes of Adam
    on MSE over the stacked-frame vectors, or fewer when `max_minutes` runs out."""
    log = log or (lambda event, **kw: None)
    # its initial weights from the same seed too, so that one bundle's retrain gives the same view
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(gen.initial_seed())
        model = DenseAutoencoder(config).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    budget = max_minutes * 60 if max_minutes else math.inf
    started, steps, loss_avg = time.monotonic(), 0, float("nan")
    model.train()
    for epoch in range(config.epochs):
        if time.monotonic() - started > budget:
            break
        order = torch.randperm(len(vectors), generator=gen)
        for idx in order.split(config.batch_size):
            if len(idx) < 2:  # batch norm needs two samples
                continue
            x = vectors[idx].to(device)
            loss = F.mse_loss(model(x), x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
            loss_avg = loss.item() if math.isnan(loss_avg) else 0.95 * loss_avg + 0.05 * loss.item()
        log("epoch", epoch=epoch + 1, loss=round(loss_avg, 3))
    return model.eval().cpu(), steps, loss_avg


def _windows(wave: torch.Tensor, n: int) -> torch.Tensor:
    """[W, n] windows of the scorer's length covering a recording end to end (evenly spaced, a little
    overlap), so that each one's level is moved as a scored window's would be; [1, N] if shorter."""
    if wave.shape[-1] <= n:
        return wave[None]
    count = math.ceil(wave.shape[-1] / n)
    starts = torch.linspace(0, wave.shape[-1] - n, count).round().long().tolist()
    return torch.stack([wave[s:s + n] for s in starts])


def train_frames(waves: list[torch.Tensor], sample_rate: int, device: torch.device, seed: int,
                 config: AutoencoderConfig | None = None, log: Callable[..., None] | None = None,
                 window_samples: int | None = None, tolerance_db: float = 0.0) -> FrameReconstruction:
    """The frame view of normal recordings `waves` (at `sample_rate`): its autoencoder fitted on every
    stacked-frame vector of their windows (`window_samples` long, as scored), each window's level
    moved up to `tolerance_db` towards the training windows' mean level, as scoring moves it."""
    config = config or AutoencoderConfig()
    frames = FrameReconstruction(config, sample_rate)
    with torch.inference_mode():
        mels = [frames.log_mel(_windows(w.float(), window_samples) if window_samples else w.float()[None])
                for w in waves]
        if tolerance_db > 0:
            frames.level = float(torch.cat([m.mean(dim=(-2, -1)) for m in mels]).mean())
        vectors = torch.cat([frames.stacked(m, tolerance_db).flatten(0, 1) for m in mels])
    started = time.monotonic()
    net, steps, loss = fit_autoencoder(vectors, config, device, torch.Generator().manual_seed(seed))
    (log or (lambda event, **kw: None))("frames", vectors=len(vectors), steps=steps, loss=round(loss, 3),
                                         seconds=round(time.monotonic() - started, 1))
    frames.net = net
    return frames.eval()
