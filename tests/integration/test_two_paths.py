"""One scorer, two paths: what `sentinel run` alerts on a replayed file is what `sentinel score`
flags in it, the span component's rolling history included; and a different microphone gain
alone raises no alert."""

import json
import os
import subprocess

import numpy as np
import soundfile as sf
import yaml

from sentinel.bundle import load_bundle
from sentinel.scoring.decision import Decider
from tests.conftest import run_cli, sentinel_cmd
from tests.helpers.net import free_port


def test_daemon_alerts_are_what_score_flags(tiny_bundle, machine_data, tmp_path):
    bundle = load_bundle(tiny_bundle)
    spec, scoring = bundle.features, bundle.scoring
    hop = round(scoring.hop_seconds * spec.sample_rate)
    # Normal, anomalous, normal for longer than the span (an event holds the span's mean up for
    # span_seconds), anomalous, cut to the hop grid: `score` adds no end-aligned window.
    parts = ["normal_0", "anomalous_0", "normal_1", "normal_2", "normal_3", "anomalous_1"]
    assert scoring.span_seconds < 9.0
    x = np.concatenate([sf.read(machine_data["test"] / f"{p}.wav", dtype="float32")[0] for p in parts])
    n = spec.window_samples + (len(x) - spec.window_samples) // hop * hop
    clip = tmp_path / "replay.wav"
    sf.write(clip, x[:n], spec.sample_rate)

    lines = [json.loads(line) for line in run_cli("score", str(tiny_bundle), str(clip), "--format", "jsonl",
                                                  "--device", "cpu", check=True).stdout.splitlines()]
    windows = [w for w in lines if w["kind"] == "window"]
    decider = Decider(bundle.threshold, 1, 1, cooldown_s=1.0)
    expected, ends = [], []
    for w in windows:
        if (e := decider.update(w["start_s"], w["end_s"], w["score"])) is not None:
            expected.append((round(e.start_s, 3), e.peak))
        if (c := decider.closed()) is not None:
            ends.append((round(c.start_s, 3), c.peak))
    if (c := decider.close_now()) is not None:
        ends.append((round(c.start_s, 3), c.peak))
    assert len(expected) >= 2, "the replay should hold at least two events"

    cfg = {"device": "cpu",
           "daemon": {"bundle": str(tiny_bundle), "cooldown_s": 1.0,
                      "max_batch": 7, "exit_when_done": True},
           "alerts": {"endpoint": f"tcp://127.0.0.1:{free_port()}", "journal": str(tmp_path / "alerts.jsonl"),
                      "clips_dir": None},
           "web": {"enabled": False},
           "sources": [{"name": "replay", "kind": "file", "path": str(clip), "realtime": False}]}
    config = tmp_path / "sentinel.yaml"
    config.write_text(yaml.safe_dump(cfg))
    proc = subprocess.run([*sentinel_cmd(), "run", "--config", str(config)], capture_output=True, text=True,
                          timeout=180, env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert proc.returncode == 0, proc.stderr
    journal = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    alerts = [a for a in journal if a["kind"] == "alert"]
    got = [(a["start_offset_s"], a["opening_score"]) for a in alerts]
    assert [g[0] for g in got] == [e[0] for e in expected]
    np.testing.assert_allclose([g[1] for g in got], [e[1] for e in expected], rtol=1e-3, atol=1e-3)
    # Each event's end carries its real peak, the one `score`'s windows reach, under the same event_id.
    closed = {a["event_id"]: a for a in journal if a["kind"] == "alert_end"}
    assert [closed[a["event_id"]]["start_offset_s"] for a in alerts] == [e[0] for e in ends]
    np.testing.assert_allclose([closed[a["event_id"]]["peak_score"] for a in alerts], [e[1] for e in ends],
                               rtol=1e-3, atol=1e-3)


def test_microphone_gain_alone_raises_no_alert(tiny_bundle, machine_data, tmp_path):
    bundle = load_bundle(tiny_bundle)
    assert bundle.scoring.level_tolerance_db >= 6.0
    normal = sorted(machine_data["test"].glob("normal_*.wav"))
    flagged = {}
    for gain_db in (0.0, 6.0, -6.0):
        folder = tmp_path / f"gain{gain_db:+.0f}"
        folder.mkdir()
        for f in normal:
            x, sr = sf.read(f, dtype="float32")
            sf.write(folder / f.name, x * 10 ** (gain_db / 20), sr, subtype="FLOAT")
        lines = [json.loads(line) for line in run_cli("score", str(tiny_bundle), str(folder), "--format", "jsonl",
                                                      "--device", "cpu", check=True).stdout.splitlines()]
        flagged[gain_db] = sum(1 for x in lines if x["kind"] == "window" and x["anomaly"])
    # 6 dB louder or quieter flags no more windows of the same normal audio than it had
    assert flagged[6.0] <= flagged[0.0] + 1 and flagged[-6.0] <= flagged[0.0] + 1, flagged
