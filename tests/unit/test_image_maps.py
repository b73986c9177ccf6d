"""Image maps at any size: padding to the denoiser's multiple and back, batching by shape, the
per-distance-from-border scaling, and bundles written before these keys existed."""

import hashlib
import json

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sentinel.diffusion.unet import UNet, UNetConfig
from sentinel.features.image_extractor import ImageExtractor
from sentinel.features.image_spec import ImageSpec
from sentinel.scoring.patch_memory import (
    PatchMapConfig,
    PatchMemory,
    edge_distance,
    pad_to_multiple,
    same_shape_batches,
)


def test_a_default_spec_keeps_the_hash_it_had_before_layouts():
    """Bundles store the spec's digest and refuse to load if it changes: adding keys must not."""
    old = {"size": 128, "representation": "wavelet", "wavelet": "haar"}
    blob = json.dumps(old, sort_keys=True, separators=(",", ":")).encode()
    assert ImageSpec().digest() == hashlib.sha256(blob).hexdigest()[:16]
    assert ImageSpec(layout="native").digest() != ImageSpec().digest()


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 70), w=st.integers(1, 70), multiple=st.sampled_from([2, 8, 16]))
def test_padding_reaches_the_multiple_and_keeps_the_image(h, w, multiple):
    image = torch.rand(1, 1, h, w)
    padded = pad_to_multiple(image, multiple)
    assert padded.shape[-2] % multiple == 0 and padded.shape[-1] % multiple == 0
    assert padded.shape[-2] - h < multiple and padded.shape[-1] - w < multiple
    assert torch.equal(padded[..., :h, :w], image)


@given(st.lists(st.sampled_from([(1, 8, 8), (1, 8, 12), (1, 16, 8)]), max_size=30), st.integers(1, 5))
def test_batches_by_shape_cover_every_image_once(shapes, batch):
    images = [torch.full(s, float(i)) for i, s in enumerate(shapes)]
    seen = []
    for idx, stack in same_shape_batches(images, batch):
        assert len(idx) <= batch and stack.shape[0] == len(idx)
        assert all(images[i].shape == stack.shape[1:] for i in idx)
        assert [int(s[0, 0, 0]) for s in stack] == idx
        seen += idx
    assert sorted(seen) == list(range(len(images)))


def test_standardised_images_ignore_exposure(tmp_path):
    """Inspection shots of one part differ in exposure; read with standardise: image they agree."""
    import numpy as np
    from PIL import Image

    from sentinel.image.io import load_image

    base = np.random.default_rng(0).uniform(0.2, 0.6, (30, 50))
    for name, gain in (("dim", 0.8), ("bright", 1.5)):
        Image.fromarray((base * gain * 255).round().astype(np.uint8)).save(tmp_path / f"{name}.png")
    spec = ImageSpec(layout="native", colour="grey", standardise="image")
    dim, bright = load_image(tmp_path / "dim.png", spec), load_image(tmp_path / "bright.png", spec)
    assert dim.shape == (1, 30, 50) and torch.allclose(dim, bright, atol=0.02)
    raw = load_image(tmp_path / "bright.png", ImageSpec(layout="native", colour="grey"))
    assert float(raw.mean()) > float(bright.mean()) + 0.05


def test_edge_distance_counts_from_the_nearest_border():
    dy, dx = edge_distance((5, 7), cap=10)
    assert dy[:, 0].tolist() == [0, 1, 2, 1, 0] and dx[0].tolist() == [0, 1, 2, 3, 2, 1, 0]
    assert int(edge_distance((50, 50), cap=4)[0].max()) == 4


def _memory(config: PatchMapConfig, images: list[torch.Tensor]) -> tuple[PatchMemory, UNet, ImageExtractor]:
    torch.manual_seed(0)
    spec = ImageSpec(size=32, layout="native", colour="grey")
    model = UNet(UNetConfig(in_channels=spec.channels, base_channels=8)).eval()
    extractor = ImageExtractor(spec)
    extractor.fit_normalisation(images)
    pm = PatchMemory.fit(model, extractor, images[:12], config, input_stride=spec.input_stride)
    pm.fit_scaling(pm.raw_image_maps(model, extractor, images[12:], batch=4))
    return pm, model, extractor


def _framed(h: int, w: int, seed: int) -> torch.Tensor:
    """A flat grey part with noisy bright sides: normal images whose borders vary most."""
    g = torch.Generator().manual_seed(seed)
    im = 0.5 + 0.02 * torch.randn(1, h, w, generator=g)
    im[:, :, :4] = im[:, :, -4:] = 0.9
    im[:, :, :4] += 0.1 * torch.randn(1, h, 4, generator=g)
    im[:, :, -4:] += 0.1 * torch.randn(1, h, 4, generator=g)
    return im.clamp(0, 1)


def test_maps_of_any_size_come_back_at_that_size():
    images = [_framed(40 + 4 * (i % 3), 36 + 6 * (i % 4), i) for i in range(18)]
    pm, model, extractor = _memory(PatchMapConfig(stride=4, smoothing_px=1.0), images)
    maps = pm.raw_image_maps(model, extractor, [_framed(37, 53, 99), _framed(20, 9, 98)], batch=4)
    assert [tuple(m.shape) for m in maps] == [(37, 53), (20, 9)]


def test_border_scaling_keeps_normal_sides_from_outranking_a_defect():
    """A small dark spot in the middle of a part: with one scaling for the whole map the noisy
    sides of normal images score like it; scaled per distance from the border they do not."""
    images = [_framed(48, 48, i) for i in range(20)]
    spot = _framed(48, 48, 100)
    spot[:, 22:26, 22:26] = 0.3
    normal = _framed(48, 48, 101)
    ranks = {}
    for edge in (0, 12):
        pm, model, extractor = _memory(PatchMapConfig(stride=4, smoothing_px=1.0, edge_px=edge,
                                                      top_fraction=0.01), images)
        zs = [pm.normalise(m) for m in pm.raw_image_maps(model, extractor, [spot, normal], batch=2)]
        ranks[edge] = float(pm.image_score(zs[0]) - pm.image_score(zs[1]))
        if edge:
            assert len(pm.edge_mean) == edge + 1 and float(zs[0][22:26, 22:26].mean()) > 2
    assert ranks[12] > ranks[0] and ranks[12] > 0, ranks
