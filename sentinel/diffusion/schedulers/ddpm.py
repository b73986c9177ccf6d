"""DDPM (Ho et al. 2020): ancestral sampling with the posterior variance. Math only."""

from __future__ import annotations

import torch

from sentinel.diffusion.schedulers.base import NoiseSchedule, SchedulerOutput


class DDPMScheduler(NoiseSchedule):
    """diffusers-style: `set_timesteps`, `step`, `add_noise`. Holds state: one per caller."""

    def set_timesteps(self, num_inference_steps: int | None = None, strength: float = 1.0) -> None:
        """Every timestep from t_start down to 0 (DDPM cannot skip steps)."""
        t_start = self.strength_to_timestep(strength)
        self.timesteps = torch.arange(t_start, -1, -1)

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> SchedulerOutput:
        t = int(timestep)
        abar_t = float(self.alphas_cumprod[t])
        abar_prev = float(self.alphas_cumprod[t - 1]) if t > 0 else 1.0
        beta_t = float(self.betas[t])
        x0 = self.pred_original(sample, model_output, t)
        # Posterior q(x_{t-1} | x_t, x_0) mean; at t = 0 it is exactly x_0 and the variance is 0.
        c0 = abar_prev**0.5 * beta_t / (1 - abar_t)
        ct = float(self.alphas[t]) ** 0.5 * (1 - abar_prev) / (1 - abar_t)
        prev = c0 * x0 + ct * sample
        if t > 0:
            var = beta_t * (1 - abar_prev) / (1 - abar_t)
            noise = torch.randn(sample.shape, generator=generator, device=sample.device, dtype=sample.dtype)
            prev = prev + var**0.5 * noise
        return SchedulerOutput(prev_sample=prev, pred_original_sample=x0)
