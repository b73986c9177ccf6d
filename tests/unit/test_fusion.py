"""The fusion a bundle chooses: the tail scale of its components and the pseudo-anomalies it ranks."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sentinel import synth
from sentinel.scoring.postprocess import TAIL_LEVELS, tail_score
from sentinel.training.fusion import PSEUDO, candidates

TABLE = [0.0, 0.7, 1.3, 1.7, 2.4]  # z of held-out normal windows at TAIL_LEVELS


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-10, 30, allow_nan=False), min_size=2, max_size=50))
def test_tail_score_is_monotone_and_nothing_at_or_below_the_median(zs):
    z = torch.tensor(sorted(zs), dtype=torch.float32)
    s = tail_score(z, TABLE)
    assert (s.diff() >= -1e-5).all()
    assert (s[z <= TABLE[0]] == 0).all()


def test_tail_score_reads_decades_of_the_normal_tail():
    s = tail_score(torch.tensor(TABLE), TABLE)
    want = [-np.log10(1 - lv) + np.log10(0.5) for lv in TAIL_LEVELS]
    assert torch.allclose(s, torch.tensor(want, dtype=torch.float32), atol=1e-4)
    # past the 99th percentile: one decade more per (q99 - q90) of z
    assert float(tail_score(torch.tensor([TABLE[-1] + (TABLE[-1] - TABLE[2])]), TABLE)) == \
        pytest.approx(want[-1] + 1, abs=1e-4)


def test_every_pseudo_anomaly_keeps_the_length_and_changes_the_spectrum():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(synth.machine(rng, 3.0).astype(np.float32))
    spec = torch.stft(x, 1024, 256, window=torch.hann_window(1024), return_complex=True).abs().mean(1)
    for kind, f in PSEUDO.items():
        y = f(x, 16000, torch.Generator().manual_seed(1))
        assert y.shape == x.shape and torch.isfinite(y).all(), kind
        sy = torch.stft(y.float(), 1024, 256, window=torch.hann_window(1024), return_complex=True).abs().mean(1)
        change_db = (20 * torch.log10((sy + 1e-6) / (spec + 1e-6))).abs().max()  # in some band
        assert change_db > 1.0 or kind == "dropouts", kind
        assert not torch.equal(x, y), kind


def test_steady_keeps_the_spectrum_and_drops_the_events():
    """A recording made of an event (a burst in silence) becomes steady noise in the same bands."""
    from sentinel.training.fusion import steady

    g = torch.Generator().manual_seed(0)
    x = torch.zeros(3 * 16000)
    x[16000:16000 + 1600] = torch.randn(1600, generator=g)
    y = steady(x, 16000, torch.Generator().manual_seed(1))
    frames = lambda w: w[: len(w) // 800 * 800].reshape(-1, 800).pow(2).mean(1)  # noqa: E731
    assert frames(x).max() / frames(x).mean() > 10  # one loud stretch
    assert frames(y)[2:-2].max() / frames(y)[2:-2].mean() < 3  # none
    assert abs(float(y.pow(2).mean() / x.pow(2).mean()) - 1) < 0.3  # the same power


def test_a_fusion_replaces_the_recipe_only_when_it_wins_beyond_the_holdouts_noise():
    from sentinel.training.fusion import decide

    rng = np.random.default_rng(3)
    n, copies, kinds = 16, 2, 7
    normal = rng.normal(size=n)

    def altered(shift):  # each recording's copies sit `shift` above it, with noise of their own
        return [np.repeat(normal, copies) + shift + rng.normal(size=n * copies) for _ in range(kinds)]

    recipe = (normal, altered(1.0))
    # a candidate that ranks higher only through one recording: its lowest altered copy raised to
    # the top; resamples without that recording (about a third) see no gain
    nudged = [a.copy() for a in recipe[1]]
    nudged[0][np.argmin(nudged[0])] = nudged[0].max() + 1
    lucky = (normal, nudged)
    best, results, wins = decide({"recipe": recipe, "lucky": lucky}, copies)
    assert results["lucky"] > results["recipe"] and wins["lucky"] < 0.9
    assert best == "recipe"
    # a candidate that separates the altered copies clearly better replaces it
    best, results, wins = decide({"recipe": recipe, "lucky": lucky, "sharp": (normal, altered(3.0))}, copies)
    assert best == "sharp" and wins["sharp"] >= 0.9


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(-5, 5), min_size=2, max_size=30), st.lists(st.integers(-5, 5), min_size=2, max_size=30))
def test_the_choices_auc_and_pauc_are_sklearns(normal, anomalous):
    from sklearn.metrics import roc_auc_score

    from sentinel.training.fusion import ranked_auc_pauc

    y = np.r_[np.zeros(len(normal)), np.ones(len(anomalous))]
    s = np.r_[normal, anomalous].astype(float)  # small integers: many ties
    auc, pauc = ranked_auc_pauc(np.array(normal, float), np.array(anomalous, float))
    assert auc == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert pauc == pytest.approx(roc_auc_score(y, s, max_fpr=0.1), abs=1e-12)


def test_the_neighbours_candidates_are_tried_only_where_the_recipe_weighs_the_neighbours():
    """By default (neighbours 0) a bundle chooses among round 11's six fusions; a recipe that weighs
    the neighbours component (scoring.weights.neighbours) also tries it leading and with the long view."""
    from sentinel.scoring.config import ScoringConfig

    default = ScoringConfig().weights
    assert default["neighbours"] == 0.0
    assert set(candidates(default)) == {"recipe", "span-led", "window-led", "clip-led", "long-view", "long-view+level"}
    weighed = candidates({**default, "neighbours": 2.0})
    assert weighed["neighbours-led"][0]["neighbours"] == 6.0
    assert weighed["long-view+neighbours"][0] == {**{k: 0.0 for k in default}, "span": 1.0, "clip": 1.0,
                                                  "neighbours": 1.0}
