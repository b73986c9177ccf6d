"""Learning where it runs (sources[].learn): a real daemon records a real-time source, trains its
bundle in a low-priority child process, and switches the source to monitoring on its own."""

import json
import signal

import numpy as np
import soundfile as sf

from sentinel import synth
from tests.conftest import run_cli
from tests.integration.test_daemon import receive, start, write_config

SR = 16000


def _statuses(got, source):
    return [m for t, m in got if t == f"status.{source}"]


def _learning_source(path, tiny_config, minutes=0.5, steps=80, **extra):
    return {"name": "fan", "kind": "file", "path": str(path), "realtime": True,
            "learn": {"minutes": minutes, "steps": steps, "train_config": str(tiny_config), "segment_s": 2.0},
            **extra}


def test_a_source_learns_trains_and_then_alerts_while_another_keeps_real_time(tiny_bundle, tiny_config,
                                                                              machine_data, tmp_path):
    rng = np.random.default_rng(11)
    x = synth.machine(rng, 75.0).astype(np.float32)  # 30 s learned, training meanwhile, then two faults
    x = synth.inject(rng, x, at_s=58.0, kind="rattle", seconds=1.0)
    x = synth.inject(rng, x, at_s=67.0, kind="whine", seconds=1.0)
    sf.write(tmp_path / "fan.wav", x, SR)
    sources = [_learning_source(tmp_path / "fan.wav", tiny_config),
               {"name": "line", "kind": "file", "path": str(machine_data["test"] / "normal_0.wav"),
                "realtime": True, "loop": True}]
    config, endpoint = write_config(tmp_path, tiny_bundle, sources, state_dir=str(tmp_path / "state"),
                                    cooldown_s=3)
    proc = start(config)
    try:
        got = receive(endpoint, "", lambda g: any(t == "alert.fan" and m["start_offset_s"] > 65 for t, m in g),
                      timeout_s=150)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    fan = _statuses(got, "fan")
    states = [m["state"] for m in fan]
    assert "learning" in states and "training" in states and "monitoring" in states, states
    order = [states.index(s) for s in ("learning", "training", "monitoring")]
    assert order == sorted(order), states  # learning -> training -> monitoring, on its own
    progress = [m["learn_progress"] for m in fan if m["state"] == "learning"]
    assert progress == sorted(progress) and progress[-1] > progress[0], progress
    alerts = [m for t, m in got if t == "alert.fan"]
    assert alerts and all(56 <= a["start_offset_s"] <= 70 for a in alerts), [a["start_offset_s"] for a in alerts]
    assert {a["bundle_id"] for a in alerts} == {fan[-1]["bundle_id"]} != {""}
    # The bundle it learned is in place, trained as asked and calibrated on audio it did not train on.
    meta = json.loads((tmp_path / "state" / "learn" / "fan" / "bundle" / "bundle.json").read_text())
    assert meta["training"]["steps"] == 80 and meta["training"]["learned"]["calibration_segments"] >= 1
    lags = [m["lag_s"] for m in _statuses(got, "line") if m.get("lag_s") is not None]
    assert len(lags) > 20 and max(lags) < 1.0, max(lags)  # real time throughout, training included
    assert proc.returncode == 0, err[-2000:]


def test_a_daemon_killed_while_learning_resumes_with_what_it_recorded(tiny_bundle, tiny_config, tmp_path):
    x = synth.machine(np.random.default_rng(12), 60.0).astype(np.float32)
    sf.write(tmp_path / "fan.wav", x, SR)
    sources = [_learning_source(tmp_path / "fan.wav", tiny_config, minutes=0.3, steps=20)]
    config, endpoint = write_config(tmp_path, tiny_bundle, sources, state_dir=str(tmp_path / "state"))
    audio = tmp_path / "state" / "learn" / "fan" / "audio"
    proc = start(config)
    try:
        got = receive(endpoint, "status.fan", lambda g: any((m.get("learn_progress") or 0) >= 0.5 for _, m in g),
                      timeout_s=60)
        assert got, "no learning status"
        proc.kill()  # SIGKILL: no chance to tidy up
        proc.wait(timeout=10)
    finally:
        proc.kill()
    kept = sorted(audio.glob("*.flac"))
    assert len(kept) >= 4, kept  # 2 s segments: at least 8 s of the 18 s recorded before the kill
    proc = start(config)
    try:
        got = receive(endpoint, "status.fan", lambda g: any(m["state"] == "monitoring" for _, m in g),
                      timeout_s=90)
        first = next(m for _, m in got if m["state"] == "learning")
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert first["learn_progress"] >= 0.3, first  # it went on from what was recorded, not from zero
    assert all(p.exists() for p in kept)  # nothing recorded was lost
    assert any(m["state"] == "monitoring" for _, m in got)
    job = json.loads((tmp_path / "state" / "learn" / "fan" / "job.done.json").read_text())
    assert {str(p) for p in kept} <= set(job["train"]) | set(job["calibrate"])


def test_record_writes_the_asked_minutes_per_source_and_resumes(tiny_bundle, machine_data, tmp_path):
    """`sentinel record` from a real RTSP server on loopback and a real-time file: each source gets
    the minutes asked, in FLAC segments; a second run with more minutes goes on from them."""
    from tests.helpers.net import free_port
    from tests.integration.test_live_sources import RtspServer

    server = RtspServer(free_port(), machine_data["test"] / "normal_1.wav")
    server.start()
    try:
        sources = [{"name": "gate", "kind": "rtsp", "url": server.url},
                   {"name": "line", "kind": "file", "path": str(machine_data["test"] / "normal_0.wav"),
                    "realtime": True, "loop": True}]
        config, _ = write_config(tmp_path, tiny_bundle, sources)
        out = tmp_path / "rec"
        for minutes in (0.1, 0.15):  # 6 s, then 9 s in all
            proc = run_cli("record", "--config", str(config), "--minutes", str(minutes), "--out", str(out),
                           "--segment-s", "2", timeout=120)
            assert proc.returncode == 0, proc.stderr[-2000:]
            summary = {json.loads(x)["source"]: json.loads(x) for x in proc.stdout.strip().splitlines()}
            for name in ("gate", "line"):
                files = sorted((out / name).glob("*.flac"))
                seconds = sum(sf.info(f).duration for f in files)
                assert minutes * 60 <= seconds <= minutes * 60 + 2.0 + 1e-6, (name, seconds)  # +- one segment
                assert summary[name]["seconds"] == round(seconds, 1)
                assert all(sf.info(f).samplerate == 16000 and sf.info(f).format == "FLAC" for f in files)
    finally:
        server.stop()
