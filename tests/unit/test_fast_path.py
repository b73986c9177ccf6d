"""The fast scoring path must give the reference path's scores: batching, channels_last and the
fused one-pass reconstruction are speed-ups, not approximations."""

import copy
import dataclasses

import pytest
import torch

from sentinel.bundle import load_bundle
from sentinel.scoring.scorer import DiffusionScorer


@pytest.fixture(scope="module")
def windows(tiny_bundle):
    spec = load_bundle(tiny_bundle).features
    return torch.randn(24, spec.window_samples, generator=torch.Generator().manual_seed(3)) * 0.05


def _reference(bundle, scoring=None) -> DiffusionScorer:
    """The naive path: NCHW tensors, one window per network call."""
    return DiffusionScorer(copy.deepcopy(bundle.model), bundle.scheduler, bundle.extractor, scoring or bundle.scoring,
                           bundle.stats, bundle.post, channels_last=False, frames=bundle.frames)


def test_fast_batched_path_matches_one_window_at_a_time(tiny_bundle, windows):
    bundle = load_bundle(tiny_bundle)
    fast = bundle.scorer("cpu", dataclasses.replace(bundle.scoring, batch_size=None))
    reference = _reference(bundle)
    reference.batch_size = 1
    got, want = fast.score(windows), reference.score(windows)
    torch.testing.assert_close(got.scores, want.scores, atol=1e-4, rtol=1e-4)
    for name in want.components:
        torch.testing.assert_close(got.components[name], want.components[name], atol=1e-4, rtol=1e-4,
                                   equal_nan=True)  # span: none for windows scored alone


def test_fused_one_pass_reconstruction_equals_one_ddim_step_per_level(tiny_bundle, windows):
    """All noise levels in one network pass (x0 algebra) = a one-step DDIM loop per level."""
    bundle = load_bundle(tiny_bundle)
    assert bundle.scoring.steps == 1 and len(bundle.scoring.strengths) >= 1
    fast = bundle.scorer("cpu")
    reference = _reference(bundle)
    with torch.inference_mode():
        x0 = fast.extractor(windows)
        fused = fast.reconstruct(x0)
        looped = []
        pipe = reference.pipeline
        for i, t in enumerate(pipe.timesteps):
            noise = pipe.noise[i].expand_as(x0)
            xt = pipe.schedule.add_noise(x0, noise, t)
            looped.append(pipe.schedule.pred_original(xt, reference.model(xt, t), t))
    for a, b in zip(fused, looped, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_bfloat16_network_passes_keep_the_ranking(tiny_bundle, windows):
    """The GPU default (bf16 autocast for the network, float32 for everything after) is exercised
    here on the CPU: scores move by rounding only, never enough to reorder clearly different windows."""
    bundle = load_bundle(tiny_bundle)
    fp32 = bundle.scorer("cpu").score(windows).scores
    bf16 = DiffusionScorer(bundle.model, bundle.scheduler, bundle.extractor, bundle.scoring, bundle.stats,
                           bundle.post, precision="bfloat16", frames=bundle.frames).score(windows).scores
    assert bf16.dtype == torch.float32 and torch.isfinite(bf16).all()
    assert torch.corrcoef(torch.stack([fp32, bf16]))[0, 1] > 0.95
    torch.testing.assert_close(bf16, fp32, atol=0.5, rtol=0.1)
