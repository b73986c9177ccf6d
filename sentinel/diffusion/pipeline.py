"""Partial noising and denoising back (img2img's idea in diffusers): the loop that owns a
denoiser and a schedule. A `strength` in (0, 1] picks the start timestep; the same fixed noise
draw is used every time, so the same input always gets the same reconstruction."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch

from sentinel.diffusion.schedulers import DDIMScheduler, NoiseSchedule, SchedulerConfig
from sentinel.diffusion.unet import UNet


class ReconstructionPipeline:
    """`pipeline(x0)` -> one reconstruction of x0 per strength. Keeps no per-call state: each
    multi-step call makes its own scheduler (schedulers hold state)."""

    def __init__(self, model: UNet, scheduler_config: SchedulerConfig, strengths: Sequence[float], steps: int,
                 noise_seed: int, input_shape: tuple[int, ...], device: torch.device,
                 autocast_dtype: torch.dtype | None = None) -> None:
        self.model, self.scheduler_config, self.device = model, scheduler_config, device
        self.strengths, self.steps, self.autocast_dtype = tuple(strengths), steps, autocast_dtype
        self.schedule = NoiseSchedule(scheduler_config)
        self.timesteps = [self.schedule.strength_to_timestep(s) for s in self.strengths]
        # One fixed noise draw per strength, made on the CPU so every device sees the same numbers.
        gen = torch.Generator().manual_seed(noise_seed)
        self.noise = torch.randn((len(self.timesteps), *input_shape), generator=gen).to(device)

    def autocast(self):
        """The network's precision context (bf16/fp16 on a GPU; nothing in float32)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _net(self, x: torch.Tensor, t: torch.Tensor | int, machine: torch.Tensor | None) -> torch.Tensor:
        """The denoiser's epsilon, in float32 whatever precision the pass ran in."""
        with self.autocast():
            return (self.model(x, t) if machine is None else self.model(x, t, machine)).float()

    def __call__(self, x0: torch.Tensor, machine: torch.Tensor | None = None) -> list[torch.Tensor]:
        """`machine`: [B] ids a fleet network denoises each input as (None: unconditioned)."""
        if machine is not None:
            machine = machine.to(self.device)
        if self.steps == 1:
            # All strengths in one network pass: x̂0 from x_t is exact algebra on epŝ.
            n, b = len(self.timesteps), x0.shape[0]
            t = torch.tensor(self.timesteps, device=self.device).repeat_interleave(b)
            noise = self.noise.repeat_interleave(b, dim=0)
            xt = self.schedule.add_noise(x0.repeat(n, 1, 1, 1), noise, t)
            ids = None if machine is None else machine.repeat(n)
            x0_hat = self.schedule.pred_original(xt, self._net(xt, t, ids), t)
            return list(x0_hat.split(b))
        out = []
        for i, strength in enumerate(self.strengths):
            sched = DDIMScheduler(self.scheduler_config)
            sched.set_timesteps(self.steps, strength=strength)
            x = self.schedule.add_noise(x0, self.noise[i].expand_as(x0), int(sched.timesteps[0]))
            for t in sched.timesteps.tolist():
                x = sched.step(self._net(x, t, machine), t, x).prev_sample
            out.append(x)
        return out
