"""The diffusion model: a denoiser network and its noise schedulers, kept apart as in diffusers."""

from sentinel.diffusion.schedulers import DDIMScheduler, SchedulerConfig
from sentinel.diffusion.unet import UNet, UNetConfig

__all__ = ["DDIMScheduler", "SchedulerConfig", "UNet", "UNetConfig"]
