"""The scheduler's contract: noising then an exact reverse gives back x0."""

import pytest
import torch

from sentinel.diffusion.schedulers import DDIMScheduler, SchedulerConfig

SCHEDULERS = [DDIMScheduler]
CONFIGS = [SchedulerConfig(), SchedulerConfig(beta_schedule="cosine", num_train_timesteps=200)]


def oracle(sched, x0):
    """A perfect denoiser: the epsilon that explains x_t given the true x0."""

    def eps(x_t, t):
        a = sched.alphas_cumprod[t].to(x_t.dtype)
        return (x_t - a.sqrt() * x0) / (1 - a).sqrt()

    return eps


@pytest.mark.parametrize("cls", SCHEDULERS)
@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("strength", [1.0, 0.3])
def test_exact_reverse_recovers_x0(cls, cfg, strength):
    torch.manual_seed(0)
    x0 = torch.randn(2, 3, 8, 8, dtype=torch.float64)  # float64: at t near T, alphā is ~1e-5
    sched = cls(cfg)
    sched.set_timesteps(10, strength=strength)
    x = sched.add_noise(x0, torch.randn_like(x0), int(sched.timesteps[0]))
    eps = oracle(sched, x0)
    gen = torch.Generator().manual_seed(0)
    for t in sched.timesteps.tolist():
        out = sched.step(eps(x, t), t, x, generator=gen)
        torch.testing.assert_close(out.pred_original_sample, x0, atol=1e-6, rtol=1e-6)
        x = out.prev_sample
    torch.testing.assert_close(x, x0, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("cls", SCHEDULERS)
@pytest.mark.parametrize("n", [1, 2, 7, 50])
def test_timesteps_strictly_decrease_to_zero(cls, n):
    sched = cls()
    sched.set_timesteps(n, strength=0.4)
    ts = sched.timesteps
    assert int(ts[0]) == sched.strength_to_timestep(0.4) == 399
    assert (ts[1:] < ts[:-1]).all()
    if n > 1:
        assert int(ts[-1]) == 0


def test_ddim_single_step_jumps_to_x0_estimate():
    sched = DDIMScheduler()
    sched.set_timesteps(1, strength=0.2)
    assert sched.timesteps.tolist() == [199]
    x0, noise = torch.randn(4, 1, 4, 4), torch.randn(4, 1, 4, 4)
    x = sched.add_noise(x0, noise, 199)
    out = sched.step(noise, 199, x)
    torch.testing.assert_close(out.prev_sample, x0, atol=1e-5, rtol=1e-5)


def test_add_noise_per_sample_timesteps_match_scalar():
    sched = DDIMScheduler()
    x0, noise = torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4)
    t = torch.tensor([0, 200, 999])
    batched = sched.add_noise(x0, noise, t)
    for i in range(3):
        torch.testing.assert_close(batched[i], sched.add_noise(x0[i], noise[i], int(t[i])))
    # Nearly clean at t = 0, nearly pure noise at t = T - 1.
    assert (batched[0] - x0[0]).abs().max() < 0.05
    assert torch.corrcoef(torch.stack([batched[2].flatten(), noise[2].flatten()]))[0, 1] > 0.99


def test_bad_strength_is_refused():
    with pytest.raises(ValueError, match="strength"):
        DDIMScheduler().set_timesteps(5, strength=0)
