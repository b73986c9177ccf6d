from sentinel.diffusion.schedulers.base import NoiseSchedule, SchedulerConfig, SchedulerOutput
from sentinel.diffusion.schedulers.ddim import DDIMScheduler
from sentinel.diffusion.schedulers.ddpm import DDPMScheduler

__all__ = ["DDIMScheduler", "DDPMScheduler", "NoiseSchedule", "SchedulerConfig", "SchedulerOutput"]
