"""Scorer determinism and bundle round trips, on a bundle trained by the real CLI."""

import hashlib
import json
import shutil

import pytest
import torch

from sentinel.bundle import load_bundle
from sentinel.errors import BundleError
from sentinel.scoring.config import ScoringConfig


@pytest.fixture(scope="module")
def windows(tiny_bundle):
    spec = load_bundle(tiny_bundle).features
    return torch.randn(5, spec.window_samples, generator=torch.Generator().manual_seed(0)) * 0.05


def test_same_audio_same_score_in_any_batch(tiny_bundle, windows):
    scorer = load_bundle(tiny_bundle).scorer("cpu")
    a = scorer.score(windows).scores
    b = scorer.score(windows).scores
    alone = torch.cat([scorer.score(windows[i : i + 1]).scores for i in range(len(windows))])
    assert torch.equal(a, b)
    torch.testing.assert_close(a, alone, atol=1e-4, rtol=1e-4)


def test_multi_step_ddim_path_scores(tiny_bundle, windows):
    bundle = load_bundle(tiny_bundle)
    weights = {"recon_mean": 1.0, "recon_topk": 1.0, "feature": 1.0, "embedding": 1.0}
    cfg = ScoringConfig(**{**bundle.scoring.to_dict(), "steps": 3, "strengths": (0.3,), "weights": weights})
    res = bundle.scorer("cpu", cfg).score(windows)
    assert res.scores.shape == (5,) and torch.isfinite(res.scores).all()
    assert set(res.components) == {"recon_mean", "recon_topk", "feature", "embedding", "level", "span", "clip",
                                    "neighbours", "frames"}
    assert (res.components["feature"] > 0).all()  # the semantic discrepancy term is computed
    assert bundle.post.component_std["feature"] > 1e-5  # and was normalised at training time


def test_round_trip_keeps_everything(tiny_bundle, tmp_path, windows):
    from sentinel.bundle import save_bundle

    bundle = load_bundle(tiny_bundle)
    assert bundle.calibration is not None and bundle.threshold is not None
    copy = load_bundle(save_bundle(bundle, tmp_path / "copy"))
    assert copy.features == bundle.features and copy.scoring == bundle.scoring
    assert copy.threshold == bundle.threshold
    torch.testing.assert_close(copy.scorer().score(windows).scores, bundle.scorer().score(windows).scores)


def _edit(src, dst, change):
    shutil.copytree(src, dst)
    meta = json.loads((dst / "bundle.json").read_text())
    change(meta)
    (dst / "bundle.json").write_text(json.dumps(meta))
    return dst


def test_bundle_from_before_level_removal_loads_as_trained(tiny_bundle, tmp_path, windows):
    def as_old(meta):  # what an older Sentinel wrote: no remove_level key, its hash over the rest
        _as_format_1(meta)
        del meta["features"]["remove_level"]
        blob = json.dumps(meta["features"], sort_keys=True, separators=(",", ":")).encode()
        meta["feature_hash"] = hashlib.sha256(blob).hexdigest()[:16]
        del meta["scoring"]["weights"]["level"]

    old = load_bundle(_edit(tiny_bundle, tmp_path / "old", as_old))
    assert old.features.remove_level is False  # the features it was trained with
    assert torch.isfinite(old.scorer().score(windows).scores).all()


def test_refuses_other_format_version(tiny_bundle, tmp_path):
    p = _edit(tiny_bundle, tmp_path / "b", lambda m: m.update(format_version=99))
    with pytest.raises(BundleError, match="version 99"):
        load_bundle(p)


def test_refuses_edited_feature_spec(tiny_bundle, tmp_path):
    p = _edit(tiny_bundle, tmp_path / "b", lambda m: m["features"].update(n_mels=64))
    with pytest.raises(BundleError, match="does not match its hash"):
        load_bundle(p)


def _as_format_1(meta):
    """What Sentinel wrote before format 2: the component scaling under normal_stats, the
    calibration beside it, no post-processor."""
    post = meta.pop("postprocess")
    meta["format_version"] = 1
    meta["normal_stats"] = {k: post[k] for k in ("component_mean", "component_std", "span_count_mean",
                                                 "span_count_std")}
    meta["calibration"] = post["calibration"]


def test_format_1_bundle_scores_as_it_did_and_saves_as_format_2(tiny_bundle, tmp_path, windows):
    from sentinel.bundle import FORMAT_VERSION, save_bundle

    new = load_bundle(tiny_bundle)
    old = load_bundle(_edit(tiny_bundle, tmp_path / "v1", _as_format_1))
    assert old.threshold == new.threshold and old.post.component_mean == new.post.component_mean
    assert torch.equal(old.scorer().score(windows).scores, new.scorer().score(windows).scores)
    save_bundle(old, tmp_path / "v2")
    assert json.loads((tmp_path / "v2" / "bundle.json").read_text())["format_version"] == FORMAT_VERSION == 2


def test_refuses_missing_or_incomplete(tiny_bundle, tmp_path):
    with pytest.raises(BundleError, match="no such folder"):
        load_bundle(tmp_path / "none")
    (tmp_path / "half").mkdir()
    with pytest.raises(BundleError, match="missing"):
        load_bundle(tmp_path / "half")


def test_machine_that_only_gets_louder_scores_higher(tiny_bundle, machine_data):
    """The model input has its level removed; the level component must still see +12 dB."""
    from sentinel.audio import load_audio
    from sentinel.windows import sliding_windows

    bundle = load_bundle(tiny_bundle)
    spec = bundle.features
    normal = sorted(machine_data["test"].glob("normal*.wav"))[0]
    wave = load_audio(normal, spec.sample_rate)[: spec.window_samples * 2]
    windows = sliding_windows(wave, spec.window_samples, spec.window_samples).samples
    scorer = bundle.scorer("cpu")
    quiet, loud = scorer.score(windows), scorer.score(windows * 4)
    assert (loud.components["level"] - quiet.components["level"] - 12.04).abs().max() < 0.2
    assert (loud.scores > quiet.scores).all()


def test_young_span_raises_no_false_alarm(tiny_bundle):
    """A span of two windows (a stream's start, after a gap) is noisier than a full one; scaled by
    what normal audio does at the same count, it is no more alarming than a full span."""
    import numpy as np

    from sentinel import synth
    from sentinel.scoring.scorer import DiffusionScorer, SpanState
    from sentinel.training.statistics import fit_statistics
    from sentinel.windows import sliding_windows

    bundle = load_bundle(tiny_bundle)
    rng = np.random.default_rng(7)
    waves = [torch.from_numpy(synth.machine(rng, 4.0)).float() for _ in range(30)]
    spec = bundle.features
    cfg = ScoringConfig(**{**bundle.scoring.to_dict(), "hop_seconds": 0.5, "span_seconds": 3.0,
                                                      "span_min_seconds": 1.0})
    scorer = DiffusionScorer(bundle.model, bundle.scheduler, bundle.extractor, cfg)
    hop = round(cfg.hop_seconds * spec.sample_rate)
    windows = lambda ws: torch.cat([sliding_windows(w, spec.window_samples, hop).samples for w in ws])  # noqa: E731
    _, stats = fit_statistics(scorer, windows(waves[:10]), windows(waves[10:20]),
                              span_recordings=(waves[:10], waves[10:20]))
    n = scorer.span_windows
    assert scorer.span_min_windows == 2 and len(stats.span_count_mean) == n
    # the mean of two windows lies farther from normal than the mean of a full span
    assert stats.span_count_mean[1] > stats.span_count_mean[n - 1]

    young, full = [], []
    for w in waves[20:]:
        win = sliding_windows(w, spec.window_samples, hop).samples
        res = scorer.score(win, [SpanState(n)] * len(win))
        z = stats.window_scores({"span": res.components["span"]}, weights={"span": 1.0})  # the span's score alone
        young.append(float(z[1]))  # two windows held
        full.append(float(z[n - 1]))
    # unscaled, young spans would sit this many normal spreads above full ones
    unscaled = (stats.span_count_mean[1] - stats.span_count_mean[n - 1]) / stats.component_std["span"]
    assert unscaled > 0.5
    assert np.mean(young) < np.mean(full) + 0.5, (young, full)


def test_bundle_from_before_the_span_scale_keeps_its_span_rule(tiny_bundle, tmp_path, windows):
    def as_old(meta):  # round 4 wrote no per-count scale: its spans started at half their length
        _as_format_1(meta)
        meta["normal_stats"].pop("span_count_mean", None)
        meta["normal_stats"].pop("span_count_std", None)

    old = load_bundle(_edit(tiny_bundle, tmp_path / "old", as_old))
    scorer = old.scorer()
    assert old.stats.span_mean is not None  # the tiny bundle's 3 s recordings do fit a span
    assert scorer.span_min_windows == max(2, scorer.span_windows // 2)
    assert torch.isfinite(scorer.score(windows).scores).all()


def test_clip_component_sees_shape_not_gain(tiny_bundle):
    """The clip Gaussian's view over a stream's span: a recording whose spectrum tilts lies far from
    normal; one 3 dB or 12 dB louder does not (a hotter microphone: the level component hears the
    12 dB, clip_shape_only). A bundle from before clip_shape_only keeps its clip level within
    level_tolerance_db only, so there 12 dB louder lies far from normal too."""
    import dataclasses

    import numpy as np

    from sentinel import synth
    from sentinel.scoring.scorer import DiffusionScorer, SpanState
    from sentinel.training.fusion import tilt
    from sentinel.training.statistics import fit_statistics
    from sentinel.windows import sliding_windows

    bundle = load_bundle(tiny_bundle)
    rng = np.random.default_rng(11)
    waves = [torch.from_numpy(synth.machine(rng, 3.0)).float() for _ in range(36)]
    spec = bundle.features
    cfg = ScoringConfig(**{**bundle.scoring.to_dict(), "hop_seconds": 0.5})
    scorer = DiffusionScorer(bundle.model, bundle.scheduler, bundle.extractor, cfg)
    hop = round(cfg.hop_seconds * spec.sample_rate)
    windows = lambda ws: torch.cat([sliding_windows(w, spec.window_samples, hop).samples for w in ws])  # noqa: E731
    stats, post = fit_statistics(scorer, windows(waves[:12]), windows(waves[12:24]),
                                 span_recordings=(waves[:12], waves[12:24]))
    assert stats.clip_mean is not None and "clip" in post.component_tail

    def clip_z(ws, scorer=scorer, post=post):  # each recording's clip z-score once its span holds all of it
        out = []
        for w in ws:
            win = sliding_windows(w, spec.window_samples, hop).samples
            res = scorer.score(win, [SpanState(scorer.span_windows)] * len(win))
            out.append(float(post.z_score("clip", res.components["clip"][-1:])))
        return np.array(out)

    g = torch.Generator().manual_seed(0)
    assert cfg.clip_shape_only
    normal = clip_z(waves[24:])
    assert np.median(clip_z([w * 10 ** (3 / 20) for w in waves[24:]])) < np.median(normal) + 1.0
    assert np.median(clip_z([w * 4 for w in waves[24:]])) < np.quantile(normal, 0.95) + 1.0
    assert np.median(clip_z([tilt(w, spec.sample_rate, g) for w in waves[24:]])) > np.quantile(normal, 0.95)
    louder = scorer.score(sliding_windows(waves[30] * 4, spec.window_samples, hop).samples).components["level"]
    assert float(post.z_score("level", louder).median()) > 3.0

    clamped = DiffusionScorer(bundle.model, bundle.scheduler, bundle.extractor,
                              dataclasses.replace(cfg, clip_shape_only=False))
    _, clamped_post = fit_statistics(clamped, windows(waves[:12]), windows(waves[12:24]),
                                     span_recordings=(waves[:12], waves[12:24]))
    assert np.median(clip_z([w * 4 for w in waves[24:]], clamped, clamped_post)) > \
        np.quantile(clip_z(waves[24:], clamped, clamped_post), 0.95) + 2

    # a bundle fitted before the clip component scores as before, whatever weight clip is given
    old_stats = dataclasses.replace(stats, clip_mean=None, clip_precision=None, clip_profile_mean=None)
    old_post = dataclasses.replace(post, component_mean={k: v for k, v in post.component_mean.items() if k != "clip"})
    old = DiffusionScorer(bundle.model, bundle.scheduler, bundle.extractor,
                          dataclasses.replace(cfg, weights={**cfg.weights, "clip": 1.0}), old_stats, old_post)
    win = sliding_windows(waves[30], spec.window_samples, hop).samples
    res = old.score(win, [SpanState(old.span_windows)] * len(win))
    assert torch.isfinite(res.scores).all() and res.components["clip"].isnan().all()


def test_neighbours_component_knows_a_normal_class_of_two_kinds(tiny_bundle):
    """A normal class of two kinds of sound (a 50 Hz and a 120 Hz machine): the neighbours component
    finds both kinds' new recordings near their own, and a third machine (85 Hz) or both kinds at
    once far from normal. Like the clip component it hears shape, not gain: 3 or 12 dB louder
    changes nothing there (a microphone's gain must not alarm), and the level component hears the
    12 dB. The bundle carries its memory, and a training recording is measured against the other
    recordings, not against itself."""
    import numpy as np

    from sentinel import synth
    from sentinel.scoring.scorer import DiffusionScorer
    from sentinel.training.statistics import fit_statistics
    from sentinel.windows import sliding_windows

    bundle = load_bundle(tiny_bundle)
    assert bundle.stats.neighbour_memory is not None and bundle.stats.neighbour_memory.shape[1] == \
        2 * bundle.features.n_mels
    rng = np.random.default_rng(11)

    def machines(n, f0):
        return [torch.from_numpy(synth.machine(rng, 3.0, f0=f0)).float() for _ in range(n)]

    low, high = machines(18, 50.0), machines(18, 120.0)
    spec = bundle.features
    cfg = ScoringConfig(**{**bundle.scoring.to_dict(), "hop_seconds": 0.5})
    scorer = DiffusionScorer(bundle.model, bundle.scheduler, bundle.extractor, cfg)
    hop = round(cfg.hop_seconds * spec.sample_rate)
    train, held, test = low[:6] + high[:6], low[6:12] + high[6:12], low[12:] + high[12:]
    windows = lambda ws: torch.cat([sliding_windows(w, spec.window_samples, hop).samples for w in ws])  # noqa: E731
    _, post = fit_statistics(scorer, windows(train), windows(held), span_recordings=(train, held))

    def z(ws, component="neighbours"):  # each recording's z-score once its span holds all of it
        out = []
        for w in ws:
            win = sliding_windows(w, spec.window_samples, hop).samples
            res = scorer.score(win, [scorer.new_span_state()] * len(win))
            out.append(float(post.z_score(component, res.components[component][-1:])))
        return np.array(out)

    normal = z(test)
    assert normal.max() < 3.0, normal
    assert z(machines(4, 85.0)).min() > normal.max() + 3
    assert z([0.5 * (a + b) for a, b in zip(low[12:16], high[12:16], strict=True)]).min() > normal.max() + 2
    assert z([w * 10 ** (3 / 20) for w in test]).max() < normal.max() + 1
    assert z([w * 4 for w in test[:4]]).max() < normal.max() + 1
    assert z([w * 4 for w in test[:4]], "level").min() > z(test, "level").max() + 3
    # a training recording scored again (calibrating on the training folder) is not its own
    # neighbour: it lies as far from the others as a new recording does, not at distance 0
    again = z(train)
    assert abs(np.median(again) - np.median(normal)) < 1.5, (again, normal)


def test_frame_view_is_trained_beside_the_network_and_hears_a_fault(tiny_bundle, machine_data):
    """`sentinel train` trains the DCASE autoencoder beside the network; its component (the log
    reconstruction error of raw log-mel frames) is higher where a fault sounds than on normal audio."""
    from sentinel.audio import load_audio

    bundle = load_bundle(tiny_bundle)
    assert bundle.frames is not None
    scorer = bundle.scorer("cpu")
    sr = bundle.features.sample_rate

    def peak(path):
        return float(scorer.score_recording(load_audio(path, sr)).components["frames"].max())

    normal = [peak(p) for p in sorted(machine_data["test"].glob("normal_*.wav"))]
    faulty = [peak(p) for p in sorted(machine_data["test"].glob("anomalous_*.wav"))]
    assert min(faulty) > max(normal), (normal, faulty)
    # and it is z-scaled on held-out audio like every other component
    assert "frames" in bundle.post.component_mean and "frames" in bundle.post.component_tail

    # a microphone a few dB hotter is no evidence (the level moves back within level_tolerance_db);
    # one far louder is
    assert bundle.frames.level is not None and bundle.scoring.level_tolerance_db >= 6.0
    files = sorted(machine_data["test"].glob("normal_*.wav"))
    at = {g: [float(scorer.score_recording(load_audio(p, sr) * 10 ** (g / 20)).components["frames"].mean())
              for p in files] for g in (0.0, 3.0, -3.0, 18.0)}
    spread = bundle.post.component_std["frames"]
    for g in (3.0, -3.0):
        assert max(abs(a - b) for a, b in zip(at[g], at[0.0], strict=True)) < 0.5 * spread, at
    assert min(a - b for a, b in zip(at[18.0], at[0.0], strict=True)) > 3 * spread, at


def test_a_short_sound_leaves_the_span_when_it_ends(tiny_bundle):
    """The window components hear a 1 s rattle; once it is over, the span (a trimmed mean over
    8 s) is back among normal spans at once instead of holding it for 8 s (which held the alert)."""
    import dataclasses

    import numpy as np

    from sentinel import synth
    from sentinel.scoring.scorer import SpanState
    from sentinel.windows import sliding_windows

    bundle = load_bundle(tiny_bundle)
    assert bundle.scoring.span_trim == 0.25
    scorer = bundle.scorer("cpu", dataclasses.replace(bundle.scoring, hop_seconds=0.5))
    spec, sr = bundle.features, bundle.features.sample_rate
    hop = sr // 2
    rng = np.random.default_rng(21)

    def span_z(x, trim):
        win = sliding_windows(torch.from_numpy(x).float(), spec.window_samples, hop)
        res = scorer.score(win.samples, [SpanState(scorer.span_windows, trim)] * len(win.starts))
        z = bundle.post.z_score("span", res.components["span"])
        return np.array(win.starts) / sr, z.numpy(), bundle.post.z_score("recon_topk", res.components["recon_topk"])

    x = synth.inject(rng, synth.machine(rng, 20.0), at_s=10.0, kind="rattle", seconds=1.0).astype(np.float32)
    starts, trimmed, topk = span_z(x, 0.25)
    _, plain, _ = span_z(x, 0.0)
    during = (starts > 9.5) & (starts < 10.5)
    after = (starts >= 11.0) & (starts <= 17.0)  # past the sound, still within 8 s of it
    assert float(topk[during].max()) > float(topk[starts > 12].max()) + 2  # the windows hear it
    before = (starts >= 7.5) & (starts < 9.0)
    # within a normal spread of where the span was before the sound (a plain mean sat ~20 above it)
    assert trimmed[after].max() < trimmed[before].max() + 1.5, (trimmed[before], trimmed[after])
    assert plain[after].min() > trimmed[after].max() + 5, plain[after]
