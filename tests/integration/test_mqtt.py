"""MQTT sink against a real Mosquitto broker: topics, Home Assistant discovery, the offline will,
alerts raised while the broker is down delivered afterwards in journal order, TLS and passwords."""

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
import soundfile as sf
import yaml

from sentinel.alerts.journal import Journal
from sentinel.alerts.mqtt import MqttSink
from sentinel.alerts.settings import MqttConfig
from tests.conftest import sentinel_cmd
from tests.helpers.mqtt_broker import Broker, Recorder, make_tls_files
from tests.helpers.net import free_port, wait_until


def daemon_config(tmp_path, bundle, sources, mqtt, **daemon):
    cfg = {
        "device": "cpu",
        "daemon": {"bundle": str(bundle), "max_batch": 16, "cooldown_s": 1.0, **daemon},
        "alerts": {"endpoint": f"tcp://127.0.0.1:{free_port()}", "journal": str(tmp_path / "alerts.jsonl"),
                   "arming_file": str(tmp_path / "arming.json"),
                   "clips_dir": None, "status_interval_s": 0.5, "mqtt": {"enabled": True, **mqtt}},
        "sources": sources,
    }
    path = tmp_path / "sentinel.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def start_daemon(config):
    return subprocess.Popen([*sentinel_cmd(), "run", "--config", str(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "2"})


def journal_alerts(tmp_path, kind: str = "alert") -> list[dict]:
    """The journal's records of one kind (alert, alert_end) as the MQTT sink sends them (no topic)."""
    path = tmp_path / "alerts.jsonl"
    if not path.exists():
        return []
    records = [json.loads(x) for x in path.read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "topic"} for r in records if r["kind"] == kind]


@pytest.fixture
def broker(tmp_path):
    (tmp_path / "broker").mkdir()
    b = Broker(tmp_path / "broker").start()
    yield b
    b.kill()


def test_alerts_status_discovery_and_offline_will(tiny_bundle, machine_data, tmp_path, broker):
    sources = [
        {"name": "quiet", "kind": "file", "path": str(machine_data["test"] / "normal_0.wav"), "loop": True},
        {"name": "loud", "kind": "file", "path": str(machine_data["test"] / "anomalous_0.wav"), "loop": True},
    ]
    config = daemon_config(tmp_path, tiny_bundle, sources, {"port": broker.port, "client_id": "bench-7",
                                                            "home_assistant": True})
    rec = Recorder(broker.port, ["sentinel/#", "homeassistant/#"])
    proc = start_daemon(config)
    try:
        assert rec.wait(lambda: rec.on("sentinel/loud/alert")), f"no alert over MQTT: {proc.stderr}"
        assert rec.wait(lambda: rec.on("sentinel/quiet/status") and len(rec.messages) > 8)
        assert rec.on("sentinel/availability")[0] == "online"
        alert = rec.json_on("sentinel/loud/alert")[0]
        assert alert in journal_alerts(tmp_path)  # exactly as journalled
        assert alert["opening_score"] > alert["threshold"] and alert["source"] == "loud"
        status = rec.json_on("sentinel/quiet/status")[-1]
        assert status["connected"] is True and status["anomaly"] is False
        assert any(s["anomaly"] for s in rec.json_on("sentinel/loud/status")), "problem sensor never turned on"
        # Home Assistant discovery: retained configs with the fields its MQTT integration requires.
        configs = {t: json.loads(p) for t, p, _ in rec.messages if t.startswith("homeassistant/")}
        problem = configs["homeassistant/binary_sensor/bench-7/loud_anomaly/config"]
        assert problem["device_class"] == "problem" and problem["state_topic"] == "sentinel/loud/status"
        score = configs["homeassistant/sensor/bench-7/quiet_score/config"]
        connected = configs["homeassistant/binary_sensor/bench-7/quiet_connected/config"]
        assert connected["device_class"] == "connectivity"
        # The entity ids the README's automation names (Home Assistant 2026.4 reads default_entity_id).
        assert problem["default_entity_id"] == "binary_sensor.loud_anomaly"
        assert score["default_entity_id"] == "sensor.quiet_score"
        assert connected["default_entity_id"] == "binary_sensor.quiet_connected"
        for c in (problem, score, connected):
            assert c["unique_id"] and c["name"] and c["value_template"]
            assert c["availability_topic"] == "sentinel/availability"
            assert c["device"]["identifiers"] == ["sentinel_bench-7"]  # one device per daemon
        assert len({c["unique_id"] for c in configs.values()}) == len(configs) == 12
        # The state sensor as Home Assistant renders it (Jinja): how far a learning source is.
        import jinja2

        state = jinja2.Template(configs["homeassistant/sensor/bench-7/quiet_state/config"]["value_template"])
        assert state.render(value_json={"state": "learning", "learn_progress": 0.42}) == "learning 42%"
        assert state.render(value_json={"state": "monitoring", "learn_progress": None}) == "monitoring"
        assert configs["homeassistant/binary_sensor/bench-7/loud_running/config"]["device_class"] == "running"
        # The armed switch: OFF from Home Assistant disarms the source (its status says so), ON re-arms it.
        switch = configs["homeassistant/switch/bench-7/quiet_armed/config"]
        assert switch["command_topic"] == "sentinel/quiet/armed/set"
        rec.client.publish(switch["command_topic"], "OFF", qos=1)
        assert rec.wait(lambda: rec.json_on("sentinel/quiet/status")[-1]["armed"] is False, timeout=20)
        rec.client.publish(switch["command_topic"], "ON", qos=1)
        assert rec.wait(lambda: rec.json_on("sentinel/quiet/status")[-1]["armed"] is True, timeout=20)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    # The broker says what the daemon could not: the last will.
    assert rec.wait(lambda: rec.on("sentinel/availability")[-1:] == ["offline"], timeout=15)
    rec.close()
    # Retained for a late Home Assistant: the configs, the last status and availability.
    late = Recorder(broker.port, ["sentinel/#", "homeassistant/#"], client_id="late")
    assert late.wait(lambda: len([m for m in late.messages if m[2]]) >= 10 + 2 + 1, timeout=10)
    assert late.on("sentinel/availability") == ["offline"]
    late.close()


def test_alerts_raised_while_broker_is_down_arrive_in_order(tiny_bundle, machine_data, tmp_path, broker):
    # An anomaly, then normal sound long enough for the span to settle: one event per loop.
    parts = ["anomalous_0", "normal_0", "normal_1"]
    x = np.concatenate([sf.read(machine_data["test"] / f"{p}.wav", dtype="float32")[0] for p in parts])
    sf.write(tmp_path / "loop.wav", x, 16000)
    sources = [{"name": "loud", "kind": "file", "path": str(tmp_path / "loop.wav"), "loop": True}]
    config = daemon_config(tmp_path, tiny_bundle, sources, {"port": broker.port, "reconnect_max_s": 1})
    rec = Recorder(broker.port, ["sentinel/+/alert", "sentinel/+/alert_end"], client_id="watcher", persistent=True)
    proc = start_daemon(config)
    try:
        assert rec.wait(lambda: rec.on("sentinel/loud/alert")), f"no alert over MQTT: {proc.stderr}"
        # The broker's next autosave keeps the watcher's subscription across the kill.
        saves = broker.saved()
        assert rec.wait(lambda: broker.saved() > saves, timeout=10), "the broker never saved its state"
        broker.kill(signal.SIGKILL)
        before = len(journal_alerts(tmp_path))
        deadline = time.monotonic() + 60
        while len(journal_alerts(tmp_path)) < before + 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        raised_while_down = len(journal_alerts(tmp_path)) - before
        assert raised_while_down >= 3, "the daemon stopped raising alerts while the broker was down"
        assert proc.poll() is None
        broker.start()
        journalled = journal_alerts(tmp_path)

        def delivered():
            seen = []
            for a in rec.json_on("sentinel/loud/alert"):  # at least once: drop repeats by event_id
                if a["event_id"] not in {s["event_id"] for s in seen}:
                    seen.append(a)
            return seen if len(seen) >= len(journalled) else None

        got = rec.wait(delivered, timeout=60)
        assert got, f"{len(delivered() or [])} of {len(journalled)} journalled alerts arrived after the outage"
        assert got[:len(journalled)] == journalled  # every alert, in journal order, exactly as journalled
        # Each event's end follows from the journal too, under its alert's event_id, with the real peak.
        ended = {e["event_id"]: e for e in journal_alerts(tmp_path, "alert_end")}
        assert ended, "no event closed in the replay"
        assert rec.wait(lambda: {e["event_id"] for e in rec.json_on("sentinel/loud/alert_end")} >= set(ended))
        opened = {a["event_id"]: a for a in journalled}
        for event_id, end in ended.items():
            assert end["peak_score"] >= opened[event_id]["opening_score"] and end["duration_s"] > 0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        rec.close()
    assert proc.returncode == 0, proc.stderr


def test_tls_and_password_from_a_credential(tmp_path, monkeypatch):
    (tmp_path / "broker").mkdir()
    tls = make_tls_files(tmp_path / "broker")
    broker = Broker(tmp_path / "broker", tls=tls, users={"sentinel": "s3cret pass"}).start()
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt-password").write_text("s3cret pass\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    journal_path = tmp_path / "alerts.jsonl"
    journal = Journal(journal_path)
    cfg = MqttConfig(enabled=True, port=broker.port, tls=True, ca_file=str(tls["ca"]), username="sentinel",
                     password="credential:mqtt-password", client_id="tls-test")
    rec = Recorder(broker.port, ["sentinel/#"], tls_ca=tls["ca"], auth=("sentinel", "s3cret pass"))
    sink = MqttSink(cfg, journal_path)
    sink.start()
    try:
        assert rec.wait(lambda: rec.on("sentinel/availability")), "sink never came online over TLS"
        record = {"kind": "alert", "source": "door", "opening_score": 9.5, "event_id": "e1"}
        journal.append({"topic": "alert.door", **record})
        sink.wake()
        assert rec.wait(lambda: rec.json_on("sentinel/door/alert")) == [record]
        sink.offer("status.door", {"kind": "status", "source": "door", "connected": True})
        assert rec.wait(lambda: rec.on("sentinel/door/status"))
    finally:
        sink.close()
        rec.close()
        journal.close()
        broker.kill()
    assert json.loads((tmp_path / "alerts.jsonl.mqtt-cursor").read_text())["offset"] == journal_path.stat().st_size


class Lines:
    """Collects what the sink logs (the daemon passes its structlog logger)."""

    def __init__(self):
        self.lines = []

    def __getattr__(self, level):
        return lambda msg, **kw: self.lines.append((level, msg, kw))


def test_wrong_password_is_logged_once_and_alerts_wait_in_the_journal(tmp_path):
    (tmp_path / "broker").mkdir()
    broker = Broker(tmp_path / "broker", users={"sentinel": "right"}).start()
    journal_path = tmp_path / "alerts.jsonl"
    journal = Journal(journal_path)
    log = Lines()
    sink = MqttSink(MqttConfig(enabled=True, port=broker.port, username="sentinel", password="wrong",
                               reconnect_max_s=1), journal_path, log=log)
    sink.start()
    try:
        journal.append({"topic": "alert.door", "source": "door", "event_id": "e1"})
        sink.wake()
        # Several refused attempts, as the broker counts them, and one log line for them all.
        assert wait_until(lambda: broker.logged("not authorised") >= 3, timeout=30), "the sink stopped retrying"
        refused = [x for x in log.lines if "refused" in x[1]]
        assert len(refused) == 1 and "username/password" in refused[0][1]
        assert "Not authorized" in refused[0][2]["reason"]
        assert sink.is_alive() and not sink.connected
    finally:
        sink.close()
        journal.close()
        broker.kill()
    assert not (tmp_path / "alerts.jsonl.mqtt-cursor").exists()  # nothing acknowledged: all still to send
    assert Journal.read(journal_path)[0]["event_id"] == "e1"
