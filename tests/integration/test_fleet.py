"""Fleet bundles: one network trained by `sentinel train --data NAME=DIR ...` for several machines,
each scored against its own machine, through the CLI and the daemon."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from sentinel import synth
from tests.conftest import run_cli
from tests.integration.test_daemon import receive, start, write_config

F0 = {"pump1": 50.0, "pump2": 63.0}


@pytest.fixture(scope="module")
def fleet_data(tmp_path_factory):
    """Per machine: train/, calib/, test/normal_*.wav, test/anomalous_*.wav; outliers/ (another machine)."""
    root = tmp_path_factory.mktemp("fleet")
    rng = np.random.default_rng(5)
    for name, f0 in F0.items():
        for sub in ("train", "calib", "test"):
            (root / name / sub).mkdir(parents=True)
        for i in range(8):
            sf.write(root / name / "train" / f"n{i}.wav", synth.machine(rng, 3.0, f0=f0), 16000)
        for i in range(3):
            sf.write(root / name / "calib" / f"c{i}.wav", synth.machine(rng, 3.0, f0=f0), 16000)
            sf.write(root / name / "test" / f"normal_{i}.wav", synth.machine(rng, 3.0, f0=f0), 16000)
            x = synth.inject(rng, synth.machine(rng, 3.0, f0=f0), at_s=1.0, kind="whine", seconds=1.0)
            sf.write(root / name / "test" / f"anomalous_{i}.wav", x, 16000)
    (root / "outliers").mkdir()
    for i in range(4):
        sf.write(root / "outliers" / f"o{i}.wav", synth.machine(rng, 3.0, f0=90.0), 16000)
    return root


@pytest.fixture(scope="module")
def fleet_bundle(fleet_data, tiny_config, tmp_path_factory):
    out = tmp_path_factory.mktemp("fleet-bundle") / "pumps"
    proc = run_cli("train", "--data", f"pump1={fleet_data / 'pump1' / 'train'}",
                   "--data", f"pump2={fleet_data / 'pump2' / 'train'}", "--outliers", str(fleet_data / "outliers"),
                   "--out", str(out), "--config", str(tiny_config), "--steps", "150", "--seed", "1", check=True)
    assert json.loads(proc.stdout.strip().splitlines()[-1])["steps"] == 150
    proc = run_cli("calibrate", str(out), "--normal", f"pump1={fleet_data / 'pump1' / 'calib'}",
                   "--normal", f"pump2={fleet_data / 'pump2' / 'calib'}", "--device", "cpu", check=True)
    lines = [json.loads(x) for x in proc.stdout.strip().splitlines()]
    assert [x["machine"] for x in lines] == ["pump1", "pump2"]
    return out


def test_a_fleet_bundle_knows_its_machines_and_asks_which(fleet_bundle, fleet_data):
    meta = json.loads((fleet_bundle / "bundle.json").read_text())
    assert meta["fleet"]["machines"] == ["pump1", "pump2"] and meta["model"]["num_machines"] == 2
    # each machine has its own threshold
    thresholds = {n: pp["calibration"]["threshold"] for n, pp in meta["fleet"]["postprocess"].items()}
    assert set(thresholds) == {"pump1", "pump2"} and thresholds["pump1"] != thresholds["pump2"]
    wav = str(fleet_data / "pump1" / "test" / "normal_0.wav")
    proc = run_cli("score", str(fleet_bundle), wav, "--device", "cpu")
    assert proc.returncode != 0
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "pump1, pump2" in err[0] and "--machine" in err[0]
    proc = run_cli("score", str(fleet_bundle), wav, "--machine", "pump9", "--device", "cpu")
    assert proc.returncode != 0 and "pump9" in proc.stderr and "pump1, pump2" in proc.stderr
    proc = run_cli("score", str(fleet_bundle), wav, "--machine", "pump1", "--format", "jsonl", "--device", "cpu",
                   check=True)
    file_line = json.loads(proc.stdout.strip().splitlines()[-1])
    assert file_line["kind"] == "file" and file_line["anomaly"] is False


def test_eval_per_machine_and_their_mean(fleet_bundle, fleet_data):
    args = []
    for name in F0:
        args += ["--normal", f"{name}={fleet_data / name / 'test' / 'normal_*'}",
                 "--anomalous", f"{name}={fleet_data / name / 'test' / 'anomalous_*'}"]
    proc = run_cli("eval", str(fleet_bundle), *args, "--format", "json", "--device", "cpu", check=True)
    lines = [json.loads(x) for x in proc.stdout.strip().splitlines()]
    assert [x.get("machine") for x in lines[:2]] == ["pump1", "pump2"]
    assert lines[2]["kind"] == "mean" and lines[2]["auc"] == pytest.approx(np.mean([x["auc"] for x in lines[:2]]))
    assert lines[2]["auc"] >= 0.8  # an injected whine on either pump


def test_a_sibling_sounds_wrong_as_this_machine(fleet_bundle, fleet_data):
    """What a fleet adds: pump2's normal sound, heard as pump1, scores higher (its machine term)
    than heard as itself; and one batched pass over both machines' windows scores each window as
    scoring it alone as its own machine does."""
    from sentinel.audio import load_audio
    from sentinel.bundle import load_bundle

    root = load_bundle(fleet_bundle)
    as1, as2 = (root.for_machine(n).scorer("cpu") for n in ("pump1", "pump2"))
    wave2 = load_audio(fleet_data / "pump2" / "test" / "normal_0.wav", 16000)
    wave1 = load_audio(fleet_data / "pump1" / "test" / "normal_0.wav", 16000)
    own = as2.score_recording(wave2)
    other = as1.score_recording(wave2)
    assert float(other.components["machine"].mean()) > float(own.components["machine"].mean()) + 1.0
    assert root.for_machine("pump1").post.file_score(other.scores) > root.for_machine("pump2").post.file_score(
        own.scores)

    n = 6
    w1 = torch.stack([wave1[i * 4000: i * 4000 + 4096] for i in range(n)])
    w2 = torch.stack([wave2[i * 4000: i * 4000 + 4096] for i in range(n)])
    mixed = torch.stack([w for pair in zip(w1, w2, strict=True) for w in pair])
    together = as1.score(mixed, machines=[1, 2] * n)
    alone1, alone2 = as1.score(w1), as2.score(w2)
    assert torch.allclose(together.scores[0::2], alone1.scores, atol=1e-4)
    assert torch.allclose(together.scores[1::2], alone2.scores, atol=1e-4)


def test_one_named_machine_is_a_bundle_of_one(fleet_data, tiny_config, tmp_path):
    out = tmp_path / "one"
    run_cli("train", "--data", f"pump1={fleet_data / 'pump1' / 'train'}", "--out", str(out), "--config",
            str(tiny_config), "--steps", "10", check=True)
    meta = json.loads((out / "bundle.json").read_text())
    assert meta["fleet"] is None and meta["model"]["num_machines"] == 0
    run_cli("score", str(out), str(fleet_data / "pump1" / "test" / "normal_0.wav"), "--device", "cpu", check=True)
    proc = run_cli("score", str(out), str(fleet_data / "pump1" / "test" / "normal_0.wav"), "--machine", "pump1")
    assert proc.returncode != 0 and "one machine" in proc.stderr


def test_the_daemon_scores_each_source_as_its_machine(fleet_bundle, fleet_data, tmp_path):
    """Two sources of one fleet bundle: the pump with a whine alerts, its normal sibling does not."""
    sources = [
        {"name": "p1", "kind": "file", "path": str(fleet_data / "pump1" / "test" / "normal_0.wav"),
         "machine": "pump1"},
        {"name": "p2", "kind": "file", "path": str(fleet_data / "pump2" / "test" / "anomalous_0.wav"),
         "machine": "pump2"},
    ]
    config, endpoint = write_config(tmp_path, fleet_bundle, sources, exit_when_done=True)
    proc = start(config)
    try:
        msgs = receive(endpoint, "", lambda got: any(t == "alert.p2" for t, _ in got))
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert any(t == "alert.p2" for t, _ in msgs), f"no alert from the faulty pump; stderr:\n{err[-2000:]}"
    assert not any(t == "alert.p1" for t, _ in msgs)
    assert any(t == "status.p1" and m["windows_scored"] > 0 for t, m in msgs)


def test_a_source_without_its_machine_is_one_line(fleet_bundle, fleet_data, tmp_path):
    sources = [{"name": "p1", "kind": "file", "path": str(fleet_data / "pump1" / "test" / "normal_0.wav")}]
    config, _ = write_config(tmp_path, fleet_bundle, sources, exit_when_done=True)
    proc = run_cli("run", "--config", str(config))
    assert proc.returncode != 0
    err = [x for x in proc.stderr.strip().splitlines() if "error" in x]
    assert len(err) == 1 and "sources.p1.machine" in err[0] and "pump1, pump2" in err[0]


def test_a_fleet_refits_with_other_scoring_settings(fleet_bundle, fleet_data):
    """The same fleet network with another recipe: every machine's statistics fitted again on its
    own recordings, each machine still scored as itself; a machine missing is one line naming them."""
    import dataclasses

    from sentinel.audio import load_audio
    from sentinel.bundle import load_bundle
    from sentinel.errors import BundleError
    from sentinel.training.trainer import refit

    bundle = load_bundle(fleet_bundle)
    scoring = dataclasses.replace(bundle.scoring, strengths=(0.3,))
    data = {n: [fleet_data / n / "train"] for n in F0}
    new = refit(bundle, data, scoring, torch.device("cpu"))
    assert new.machines == ["pump1", "pump2"] and new.scoring.strengths == (0.3,)
    assert new.post.calibration is None and new.frames is not None
    old_means = {n: pp.component_mean["recon_mean"] for n, (_, pp) in bundle.fleet.items()}
    for n in F0:
        post = new.fleet[n][1]
        assert post.component_mean["recon_mean"] != old_means[n]  # fitted again, for this recipe
        scorer = new.for_machine(n).scorer("cpu")
        normal = scorer.score_recording(load_audio(fleet_data / n / "test" / "normal_0.wav", 16000)).scores
        faulty = scorer.score_recording(load_audio(fleet_data / n / "test" / "anomalous_0.wav", 16000)).scores
        assert float(faulty.max()) > float(normal.max())
    with pytest.raises(BundleError, match="pump1, pump2"):
        refit(bundle, {"pump1": data["pump1"]}, scoring, torch.device("cpu"))
