"""The noise schedule, `add_noise`, and the step's typed output: what the training loss and the DDIM sampler share."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Literal

import torch
from pydantic import ConfigDict, Field


@dataclass(frozen=True)
class SchedulerConfig:
    """The forward (noising) process. Saved in the bundle; training and DDIM read the same one."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    num_train_timesteps: Annotated[int, Field(gt=1, description="T, the number of diffusion steps.")] = 1000
    beta_start: Annotated[float, Field(gt=0, lt=1, description="Noise variance at t = 0.")] = 1e-4
    beta_end: Annotated[float, Field(gt=0, lt=1, description="Noise variance at t = T - 1.")] = 0.02
    beta_schedule: Annotated[
        Literal["linear", "cosine"], Field(description="How beta grows from beta_start to beta_end.")
    ] = "linear"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class SchedulerOutput:
    prev_sample: torch.Tensor
    """x_{t-1} (or the sample at the next, lower timestep of the inference schedule)."""
    pred_original_sample: torch.Tensor
    """The model's estimate of x_0 from x_t."""


def make_betas(cfg: SchedulerConfig) -> torch.Tensor:
    T = cfg.num_train_timesteps
    if cfg.beta_schedule == "linear":
        return torch.linspace(cfg.beta_start, cfg.beta_end, T, dtype=torch.float64)
    # Nichol & Dhariwal's cosine schedule, clipped as they do.
    s = 0.008
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((steps + s) / (1 + s) * torch.pi / 2) ** 2
    return (1 - f[1:] / f[:-1]).clamp(max=0.999)


class NoiseSchedule:
    """alphā_t and the closed-form forward process q(x_t | x_0)."""

    def __init__(self, config: SchedulerConfig | None = None) -> None:
        self.config = config or SchedulerConfig()
        self.betas = make_betas(self.config)
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        self.num_train_timesteps = self.config.num_train_timesteps
        self.timesteps = torch.arange(self.num_train_timesteps - 1, -1, -1)

    def _abar(self, t: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
        """alphā at t (scalar or per-sample), shaped to broadcast over `like`."""
        t = torch.as_tensor(t, device=self.alphas_cumprod.device).long()
        a = self.alphas_cumprod[t].to(device=like.device, dtype=like.dtype)
        return a.reshape(-1, *([1] * (like.dim() - 1))) if a.dim() else a

    def add_noise(self, original: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor | int) -> torch.Tensor:
        """x_t = sqrt(alphā_t) x_0 + sqrt(1 - alphā_t) eps."""
        a = self._abar(timesteps, original)
        return a.sqrt() * original + (1 - a).sqrt() * noise

    def pred_original(self, sample: torch.Tensor, eps: torch.Tensor, timesteps: torch.Tensor | int) -> torch.Tensor:
        """x̂_0 = (x_t - sqrt(1 - alphā_t) epŝ) / sqrt(alphā_t): exact algebra, one network pass."""
        a = self._abar(timesteps, sample)
        return (sample - (1 - a).sqrt() * eps) / a.sqrt()

    def strength_to_timestep(self, strength: float) -> int:
        """img2img's `strength` in (0, 1] -> the starting timestep t_start."""
        if not 0 < strength <= 1:
            raise ValueError(f"strength must be in (0, 1], got {strength}")
        return max(0, min(self.num_train_timesteps - 1, round(strength * self.num_train_timesteps) - 1))
