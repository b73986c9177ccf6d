"""Which recordings are held out to scale the score: whole sources, so that held-out audio is as new as the
next machine's or the next day's (slices of one source beside their siblings look too normal)."""

from __future__ import annotations

from pathlib import Path

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sentinel.training.data import Recording
from sentinel.training.trainer import TrainingConfig, holdout_split, split_recordings


def _recs(names: list[str]) -> list[Recording]:
    return [Recording(Path("/data") / n, torch.zeros(1)) for n in names]


def test_group_is_the_first_number_in_the_name() -> None:
    groups = [r.group for r in _recs(["134717-0-0-12.wav", "134717-0-1-3.wav", "normal_57320-0-0-1.flac",
                                      "20261202T011500.250Z.flac", "hum.wav"])]
    assert groups[:4] == ["134717", "134717", "57320", "20261202"]
    assert groups[4] == "/data/hum.wav"  # no number: a group of its own


def test_slices_of_one_source_are_never_split_between_fit_and_held_out() -> None:
    # UrbanSound8K's shape: 100 slices of 7 source recordings
    names = [f"{src}-0-0-{i}.wav" for src, n in ((177621, 25), (134717, 25), (57320, 24), (151977, 14),
                                                 (59277, 8), (50901, 3), (127873, 1)) for i in range(n)]
    fit, held = split_recordings(_recs(names), TrainingConfig())
    assert held and fit
    assert not {r.group for r in fit} & {r.group for r in held}
    assert len(held) <= 2 * round(0.15 * len(names))


def test_files_that_share_no_source_split_as_before() -> None:
    items = list(range(40))
    groups = [f"g{i}" for i in items]
    assert holdout_split(items, 0.15, 3, groups) == holdout_split(items, 0.15, 3)
    one = ["same"] * 40  # one group holding everything: nothing could be held out whole
    assert holdout_split(items, 0.15, 3, one) == holdout_split(items, 0.15, 3)


def test_two_sessions_are_never_split_into_one_for_training_and_one_held_out() -> None:
    # the real fan's shape: 24 slices recorded one day, 6 a year later; holding out the later day
    # would train on one session and set the threshold on audio the network never heard
    names = [f"normal_ON_20200318T2044{i:02d}_{i % 6}.wav" for i in range(24)]
    names += [f"normal_ON_20210210T1012{i:02d}_{i}.wav" for i in range(6)]
    items = _recs(names)
    fit, held = split_recordings(items, TrainingConfig())
    assert {r.group for r in fit} == {"20200318", "20210210"}
    assert (fit, held) == holdout_split(items, 0.15, 0)  # one by one, as without groups
    three = _recs(names + [f"normal_ON_20220101T0000{i:02d}_0.wav" for i in range(6)])
    fit, held = split_recordings(three, TrainingConfig())
    assert len({r.group for r in fit}) == 2 and not {r.group for r in fit} & {r.group for r in held}


def test_a_bundle_trained_before_groups_keeps_its_split() -> None:
    recs = _recs([f"177621-0-0-{i}.wav" for i in range(10)] + [f"57320-0-0-{i}.wav" for i in range(10)])
    old = split_recordings(recs, TrainingConfig(holdout_groups=False))
    assert old == holdout_split(recs, 0.15, 0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=2, max_size=60), st.floats(0.05, 0.5), st.integers(0, 5))
def test_split_is_a_partition_with_both_sides_non_empty(keys: list[int], fraction: float, seed: int) -> None:
    items = list(range(len(keys)))
    fit, held = holdout_split(items, fraction, seed, [str(k) for k in keys])
    assert sorted(fit + held) == items
    assert fit and held
    fit_groups, held_groups = {keys[i] for i in fit}, {keys[i] for i in held}
    if 1 < len(set(keys)) < len(keys) and fit_groups & held_groups:
        # split one by one only when no whole group could be held out
        assert len(held) == min(len(items) - 1, max(1, round(fraction * len(items))))
