from sentinel.diffusion.schedulers.base import NoiseSchedule, SchedulerConfig, SchedulerOutput
from sentinel.diffusion.schedulers.ddim import DDIMScheduler

__all__ = ["DDIMScheduler", "NoiseSchedule", "SchedulerConfig", "SchedulerOutput"]
