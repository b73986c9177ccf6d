"""DDIM (Song et al. 2021): deterministic (eta = 0) sampling on a strided schedule. Math only."""

from __future__ import annotations

import torch

from sentinel.diffusion.schedulers.base import NoiseSchedule, SchedulerOutput


class DDIMScheduler(NoiseSchedule):
    """diffusers-style: `set_timesteps`, `step`, `add_noise`. Holds state: one per caller."""

    def set_timesteps(self, num_inference_steps: int, strength: float = 1.0) -> None:
        """`num_inference_steps` timesteps evenly spaced from t_start (set by `strength`) to 0.

        One step is allowed: it jumps from t_start straight to x̂_0.
        """
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
        t_start = self.strength_to_timestep(strength)
        n = min(num_inference_steps, t_start + 1)
        steps = torch.linspace(t_start, 0, n).round().long() if n > 1 else torch.tensor([t_start])
        self.timesteps = torch.unique_consecutive(steps)

    def prev_timestep(self, timestep: int) -> int:
        """The next lower timestep of the schedule, or -1 after the last (meaning alphā = 1)."""
        later = self.timesteps[self.timesteps < int(timestep)]
        return int(later[0]) if len(later) else -1

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> SchedulerOutput:
        t = int(timestep)
        prev_t = self.prev_timestep(t)
        abar_prev = float(self.alphas_cumprod[prev_t]) if prev_t >= 0 else 1.0
        x0 = self.pred_original(sample, model_output, t)
        prev = abar_prev**0.5 * x0 + (1 - abar_prev) ** 0.5 * model_output
        return SchedulerOutput(prev_sample=prev, pred_original_sample=x0)
