import math

import numpy as np
import pytest
import pywt
import torch
from pydantic import TypeAdapter, ValidationError

from sentinel.features import FeatureExtractor, FeatureSpec, LogMel
from sentinel.features.wavelet import dwt2_channels


@pytest.mark.parametrize(
    "representation,shape", [("mel", (1, 128, 64)), ("wavelet", (4, 64, 32)), ("mel+wavelet", (4, 128, 64))]
)
def test_extractor_shapes(representation, shape):
    spec = FeatureSpec(representation=representation)
    x = FeatureExtractor(spec)(torch.randn(3, spec.window_samples))
    assert x.shape == (3, *shape) == (3, *spec.input_shape)


def test_tone_lands_in_the_right_mel_bin():
    spec = FeatureSpec()
    mel = LogMel(spec)
    t = torch.arange(spec.window_samples) / spec.sample_rate
    for freq in (250.0, 1000.0, 4000.0):
        m = mel.window(torch.sin(2 * torch.pi * freq * t)[None])[0]
        peak = int(m.mean(dim=1).argmax())
        centres = torch.tensor(
            [700 * (10 ** (m_ / 2595) - 1) for m_ in np.linspace(0, 2595 * np.log10(1 + 8000 / 700), 130)[1:-1]]
        )
        assert abs(float(centres[peak]) - freq) / freq < 0.1, (freq, float(centres[peak]))


def test_window_crop_matches_whole_recording_spectrogram():
    """Training crops whole-file log-mels; scoring transforms windows: same frames inside."""
    spec = FeatureSpec()
    mel = LogMel(spec)
    wave = torch.randn(spec.window_samples * 4)
    start = spec.window_samples
    whole = mel(wave)[:, start // spec.hop_length :][:, : spec.window_frames]
    window = mel.window(wave[start : start + spec.window_samples][None])[0]
    inner = slice(4, spec.window_frames - 4)  # frames whose FFT never reaches the window edge
    torch.testing.assert_close(whole[:, inner], window[:, inner], atol=1e-3, rtol=1e-4)


def test_wavelet_matches_pywavelets():
    x = torch.randn(2, 1, 32, 16, dtype=torch.float64)
    c = dwt2_channels(x)
    approx, (h, v, d) = pywt.dwt2(x[0, 0].numpy(), "haar")
    np.testing.assert_allclose(c[0, 0].numpy(), approx, atol=1e-6)
    np.testing.assert_allclose(torch.cat([c[0, 1:]]).numpy(), np.stack([h, v, d]), atol=1e-6)


def test_spec_hash_is_stable_and_sensitive():
    a, b = FeatureSpec(), FeatureSpec()
    assert a.digest() == b.digest()
    assert FeatureSpec(n_mels=64).digest() != a.digest()


def test_spec_refuses_unknown_keys_and_bad_sizes():
    with pytest.raises(ValidationError, match="n_mel"):
        TypeAdapter(FeatureSpec).validate_python({"n_mel": 64})
    with pytest.raises((ValidationError, ValueError), match="multiple of 8"):
        TypeAdapter(FeatureSpec).validate_python({"n_mels": 60})


def test_normalisation_standardises_each_bin():
    spec = FeatureSpec(n_mels=32, window_frames=16, remove_level=False)
    ex = FeatureExtractor(spec)
    mels = [ex.log_mel(torch.randn(16000) * s) for s in (0.1, 0.3, 1.0)]
    ex.fit_normalisation(mels)
    z = ex.normalise(torch.cat(mels, dim=1))
    torch.testing.assert_close(z.mean(dim=1), torch.zeros(32), atol=1e-4, rtol=0)
    torch.testing.assert_close(z.std(dim=1), torch.ones(32), atol=1e-3, rtol=0)


def test_microphone_gain_moves_only_the_level():
    """A quieter microphone (-6 dB) changes no model input, only the level the scorer reads."""
    spec = FeatureSpec(n_mels=32, window_frames=16)
    ex = FeatureExtractor(spec)
    gen = torch.Generator().manual_seed(0)
    train = [ex.log_mel(torch.randn(8000, generator=gen) * s) for s in (0.1, 0.3, 1.0)]
    ex.fit_normalisation(train)
    windows = torch.randn(3, spec.window_samples, generator=gen)
    x_loud, level_loud = ex.inputs(windows)
    x_quiet, level_quiet = ex.inputs(windows / 2)
    torch.testing.assert_close(x_quiet, x_loud, atol=1e-3, rtol=0)
    assert torch.all((level_loud - level_quiet - 20 * math.log10(2)).abs() < 0.1)
    assert ex.normalise(ex.log_mel.window(windows)).mean(dim=(-2, -1)).abs().max() < 2  # still standardised

