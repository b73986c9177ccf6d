"""The diffusion model: a denoiser network and its noise schedulers, kept apart as in diffusers."""

from sentinel.diffusion.schedulers import DDIMScheduler, DDPMScheduler, SchedulerConfig
from sentinel.diffusion.unet import UNet, UNetConfig

__all__ = ["DDIMScheduler", "DDPMScheduler", "SchedulerConfig", "UNet", "UNetConfig"]
