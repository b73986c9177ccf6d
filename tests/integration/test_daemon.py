"""`sentinel run` as a process: real file sources, a real ZeroMQ SUB socket, the journal, clips."""

import json
import os
import signal
import subprocess
import time

import pytest
import yaml
import zmq

from tests.conftest import sentinel_cmd
from tests.helpers.net import free_port


def write_config(tmp_path, bundle, sources, **daemon):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    cfg = {
        "device": "cpu",
        "daemon": {"bundle": str(bundle), "max_batch": 16, "cooldown_s": 30, **daemon},
        "alerts": {"endpoint": endpoint, "journal": str(tmp_path / "alerts.jsonl"),
                   "arming_file": str(tmp_path / "arming.json"),
                   "clips_dir": str(tmp_path / "clips"), "clip_pre_s": 0.5, "clip_post_s": 0.5,
                   "status_interval_s": 0.5},
        "sources": sources,
    }
    path = tmp_path / "sentinel.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, endpoint


def start(config):
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    return subprocess.Popen([*sentinel_cmd(), "run", "--config", str(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def receive(endpoint, topic, until, timeout_s=60.0):
    """Messages on `topic` until `until(messages)` holds or the timeout passes."""
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.SUBSCRIBE, topic.encode())
    sock.connect(endpoint)
    got, deadline = [], time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not until(got):
            if sock.poll(200):
                t, payload = sock.recv_multipart()
                got.append((t.decode(), json.loads(payload)))
    finally:
        sock.close(0)
    return got


def test_alert_reaches_subscriber_journal_and_clip(tiny_bundle, machine_data, tmp_path):
    sources = [
        {"name": "quiet", "kind": "file", "path": str(machine_data["test"] / "normal_0.wav"), "realtime": True},
        {"name": "loud", "kind": "file", "path": str(machine_data["test"] / "anomalous_0.wav"), "realtime": True},
    ]
    config, endpoint = write_config(tmp_path, tiny_bundle, sources, exit_when_done=True)
    proc = start(config)
    try:
        msgs = receive(endpoint, "", lambda got: any(t == "alert.loud" for t, _ in got))
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    alerts = [m for t, m in msgs if t == "alert.loud"]
    assert alerts, f"no alert arrived; stderr:\n{err}"
    a = alerts[0]
    assert a["schema"] == 2 and a["source"] == "loud" and a["opening_score"] > a["threshold"]
    assert a["end_offset_s"] > a["start_offset_s"] >= 0 and a["start"].endswith("+00:00")
    assert any(t == "status.quiet" and m["windows_scored"] > 0 for t, m in msgs)  # the quiet source was scored
    # A late subscriber finds every alert in the journal, and each clip exists.
    journal = [json.loads(x) for x in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    opened = [j for j in journal if j["topic"].startswith("alert.")]
    assert {j["event_id"] for j in opened} >= {a["event_id"]}
    assert not any(j["source"] == "quiet" for j in journal)
    for j in opened:
        assert os.path.getsize(j["clip"]) > 1000
    # Every event's end is journalled under its event_id, with the event's real peak.
    ends = {j["event_id"]: j for j in journal if j["topic"].startswith("alert_end.")}
    assert set(ends) == {j["event_id"] for j in opened}
    for j in opened:
        assert ends[j["event_id"]]["peak_score"] >= j["opening_score"]
        assert ends[j["event_id"]]["duration_s"] > 0


def test_sigterm_stops_within_two_seconds(tiny_bundle, machine_data, tmp_path):
    sources = [{"name": "loop", "kind": "file", "path": str(machine_data["test"] / "normal_1.wav"),
                "realtime": True, "loop": True}]
    config, endpoint = write_config(tmp_path, tiny_bundle, sources)
    proc = start(config)
    try:
        beats = receive(endpoint, "status.", lambda got: len(got) >= 2, timeout_s=60)
        assert beats, "no heartbeat before SIGTERM"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        elapsed = time.monotonic() - t0
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert elapsed < 2.0, elapsed
    assert "SIGTERM" in proc.stderr.read()


def test_bad_source_is_reported_and_others_keep_running(tiny_bundle, machine_data, tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....WAVEjunk")
    sources = [
        {"name": "bad", "kind": "file", "path": str(broken)},
        {"name": "good", "kind": "file", "path": str(machine_data["test"] / "anomalous_1.wav"), "realtime": False},
    ]
    config, _ = write_config(tmp_path, tiny_bundle, sources, exit_when_done=True)
    proc = subprocess.run([*sentinel_cmd(), "run", "--config", str(config)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "broken.wav" in proc.stderr
    journal = [json.loads(x) for x in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert journal and all(j["source"] == "good" for j in journal)


@pytest.mark.parametrize("yaml_text,expect", [
    ("sources: [{name: a, kind: file}]", "needs 'path'"),
    ("daemon: {max_batch: 0}", "daemon.max_batch"),
    ("alerts: {endpoit: x}", "alerts.endpoit"),
])
def test_config_errors_stop_start_up_with_one_line(tmp_path, yaml_text, expect):
    p = tmp_path / "c.yaml"
    p.write_text(yaml_text)
    proc = subprocess.run([*sentinel_cmd(), "run", "--config", str(p)], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0], proc.stderr


def test_a_bundle_per_source_and_a_reload_that_swaps_one(tiny_bundle, tiny_config, machine_data, tmp_path):
    """Two machines, two bundles, one daemon: each source is scored by its own bundle (its status and
    alerts say which), and SIGHUP gives one source another bundle without a gap for the other."""
    from tests.conftest import run_cli

    other = tmp_path / "other-bundle"
    run_cli("train", "--data", str(machine_data["normal"]), "--out", str(other), "--config", str(tiny_config),
            "--seed", "4", "--steps", "20", check=True)
    run_cli("calibrate", str(other), "--normal", str(machine_data["calib"]), "--device", "cpu", check=True)
    ids = {p: json.loads((p / "bundle.json").read_text())["bundle_id"] for p in (tiny_bundle, other)}
    assert ids[tiny_bundle] != ids[other]
    wav = str(machine_data["test"] / "anomalous_0.wav")
    sources = [{"name": "pump", "kind": "file", "path": wav, "realtime": True, "loop": True},
               {"name": "fan", "kind": "file", "path": wav, "realtime": True, "loop": True, "bundle": str(other)}]
    config, endpoint = write_config(tmp_path, tiny_bundle, sources, cooldown_s=1.0)
    proc = start(config)
    try:
        def latest(got):
            return {m["source"]: m for t, m in got if t.startswith("status.")}

        got = receive(endpoint, "", lambda g: len(latest(g)) == 2 and any(t == "alert.fan" for t, _ in g))
        status = latest(got)
        assert status["pump"]["bundle_id"] == ids[tiny_bundle] and status["fan"]["bundle_id"] == ids[other]
        assert next(m for t, m in got if t == "alert.fan")["bundle_id"] == ids[other]
        # The fan gets the pump's bundle; the pump keeps being scored through the reload.
        cfg = yaml.safe_load(config.read_text())
        del cfg["sources"][1]["bundle"]
        config.write_text(yaml.safe_dump(cfg))
        before = status["pump"]["windows_scored"]
        proc.send_signal(signal.SIGHUP)
        got = receive(endpoint, "status.", lambda g: latest(g).get("fan", {}).get("bundle_id") == ids[tiny_bundle])
        assert latest(got)["fan"]["bundle_id"] == ids[tiny_bundle], "the fan never moved to the new bundle"
        assert latest(got)["pump"]["windows_scored"] > before
        assert latest(got)["pump"]["dropped_samples"] == 0  # no gap for the source that stayed
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err[-2000:]


def test_bundles_that_cut_other_windows_are_one_line(tiny_bundle, machine_data, tmp_path):
    from sentinel.config import DEMO_DIR

    wav = str(machine_data["test"] / "normal_0.wav")
    sources = [{"name": "pump", "kind": "file", "path": wav},
               {"name": "fan", "kind": "file", "path": wav, "bundle": str(DEMO_DIR / "bundle")}]
    config, _ = write_config(tmp_path, tiny_bundle, sources)
    proc = subprocess.run([*sentinel_cmd(), "run", "--config", str(config)], capture_output=True, text=True,
                          timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and "sources.fan.bundle" in lines[-1] and "second daemon" in lines[-1], proc.stderr


def test_a_machine_that_stops_is_stopped_not_anomalous(tiny_bundle, machine_data, tmp_path):
    """Switched off (far quieter than its normal audio ever was) for longer than stopped_after_s:
    the source is `stopped` and raises no alert; sounding again it is monitored afresh."""
    import numpy as np
    import soundfile as sf

    from sentinel import synth

    sr = 16000
    x = synth.machine(np.random.default_rng(5), 14.0).astype(np.float32)  # one continuous recording
    gain = np.ones_like(x)  # the machine spins down over 0.5 s, is off 6 s, and spins up again
    t = np.arange(len(x)) / sr
    gain[(t >= 3.0) & (t < 3.5)] = np.linspace(1, 0, int(0.5 * sr))
    gain[(t >= 3.5) & (t < 9.5)] = 0.0
    gain[(t >= 9.5) & (t < 10.0)] = np.linspace(0, 1, int(0.5 * sr))
    off = x * gain
    sf.write(tmp_path / "off.wav", off, sr)
    sources = [{"name": "press", "kind": "file", "path": str(tmp_path / "off.wav"), "realtime": True,
                "stopped_after_s": 2.0}]
    config, endpoint = write_config(tmp_path, tiny_bundle, sources, exit_when_done=True)
    proc = start(config)
    try:
        got = receive(endpoint, "", lambda g: any(m.get("state") == "stopped" for _, m in g)
                      and [m.get("state") for _, m in g][-1:] == ["monitoring"], timeout_s=60)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    states = [m["state"] for t, m in got if t == "status.press"]
    assert "stopped" in states, states
    assert states[-1] == "monitoring" and states.index("stopped") < len(states) - 1
    journal = tmp_path / "alerts.jsonl"
    alerts = [json.loads(x) for x in journal.read_text().splitlines()] if journal.exists() else []
    assert [a for a in alerts if a["kind"] == "alert"] == [], "the machine being off raised an alert"
    assert proc.returncode == 0, err[-2000:]


def test_a_short_dropout_still_alerts_late_and_is_not_stopped(tiny_bundle, tmp_path):
    """Sound that vanishes for less than stopped_after_s is a fault, not a machine switched off."""
    import numpy as np
    import soundfile as sf

    from sentinel import synth

    sr = 16000
    x = synth.machine(np.random.default_rng(6), 8.0).astype(np.float32)
    x[int(3.0 * sr): int(3.8 * sr)] = 0.0  # 0.8 s of nothing
    sf.write(tmp_path / "dropout.wav", x, sr)
    sources = [{"name": "press", "kind": "file", "path": str(tmp_path / "dropout.wav"), "realtime": False,
                "stopped_after_s": 3.0}]
    config, endpoint = write_config(tmp_path, tiny_bundle, sources, exit_when_done=True)
    proc = subprocess.run([*sentinel_cmd(), "run", "--config", str(config)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    alerts = [json.loads(x) for x in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    opened = [a for a in alerts if a["kind"] == "alert"]
    assert opened and 2.5 < opened[0]["start_offset_s"] < 3.8, opened  # where the sound went, judged late
    assert "source stopped" not in proc.stderr


def test_a_burst_of_alerts_keeps_the_clips_folder_within_its_limit(tiny_bundle, machine_data, tmp_path):
    import numpy as np
    import soundfile as sf

    parts = ["anomalous_0", "normal_0", "normal_1", "normal_2"]  # one event per loop, at full speed: a burst
    x = np.concatenate([sf.read(machine_data["test"] / f"{p}.wav", dtype="float32")[0] for p in parts])
    sf.write(tmp_path / "burst.wav", x, 16000)
    sources = [{"name": "burst", "kind": "file", "path": str(tmp_path / "burst.wav"), "realtime": False,
                "loop": True}]
    from tests.helpers.mqtt_broker import Broker, Recorder
    from tests.helpers.net import wait_until

    broker = Broker(tmp_path).start()
    rec = Recorder(broker.port, ["sentinel/burst/alert"])
    config, endpoint = write_config(tmp_path, tiny_bundle, sources, cooldown_s=0.3)
    cfg = yaml.safe_load(config.read_text())
    cfg["alerts"]["clips_max_mb"] = 0.2
    # A journal rotated every couple of events: the MQTT sink must follow it across every rotation.
    cfg["alerts"] |= {"journal_max_mb": 0.002, "journal_keep": 1000,
                      "mqtt": {"enabled": True, "port": broker.port, "client_id": "burst-test"}}
    config.write_text(yaml.safe_dump(cfg))

    def journal():
        files = sorted(tmp_path.glob("alerts.jsonl.*[0-9]"), key=lambda p: -int(p.suffix[1:])) + \
            [tmp_path / "alerts.jsonl"]
        return [json.loads(x) for p in files for x in p.read_text().splitlines()]

    proc = start(config)
    try:
        got = receive(endpoint, "alert.", lambda g: len(g) >= 8, timeout_s=90)
        journalled = {j["event_id"] for j in journal() if j["kind"] == "alert"}
        delivered = lambda: [json.loads(m)["event_id"] for _, m, _ in rec.messages]  # noqa: E731
        wait_until(lambda: journalled <= set(delivered()), timeout=30)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
        rec.close()
        broker.kill()
    assert len(got) >= 8 and proc.returncode == 0, err[-2000:]
    assert len(list(tmp_path.glob("alerts.jsonl.*[0-9]"))) >= 3  # it did rotate, several times
    ids = delivered()
    assert journalled <= set(ids) and max(ids.count(i) for i in set(ids)) <= 2  # none lost; at least once
    clips = sorted((tmp_path / "clips").glob("*.wav"))
    assert sum(p.stat().st_size for p in clips) <= 0.2 * 2**20
    alerts = [j for j in journal() if j["kind"] == "alert"]
    assert len(alerts) >= 8  # every alert stays in the journal, clip or not
    assert os.path.exists(alerts[-1]["clip"])  # the newest clips are the ones kept
    assert "clips removed (retention)" in err
