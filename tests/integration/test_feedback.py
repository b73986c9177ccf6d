""""That was normal" through each of its three paths (CLI, dashboard, MQTT), against a real daemon,
a real mosquitto and the real dashboard: a harmless sound that alerts at every replay stops
alerting once accepted, a different fault still alerts, and undo brings the alert back."""

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request

import numpy as np
import paho.mqtt.client as mqtt
import soundfile as sf
import yaml

from sentinel import synth
from tests.conftest import run_cli
from tests.helpers.mqtt_broker import Broker
from tests.helpers.net import free_port, wait_until
from tests.integration.test_daemon import start, write_config

SR, LOOP_S, RATTLE_S, WHINE_S = 16000, 18.0, 2.0, 9.0
"""Events further apart than the 8 s span, so each event's span tail ends before the next."""


def _journal(tmp_path):
    path = tmp_path / "alerts.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def _alerts_after(tmp_path, t0, near_s):
    """Alerts journalled after unix time t0 whose event starts near `near_s` into the loop."""
    return [a for a in _journal(tmp_path) if a["kind"] == "alert" and a.get("time_unix", 0) >= t0
            and abs(a["start_offset_s"] % LOOP_S - near_s) < 1.0]


def _post(url, body, headers):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_feedback_through_cli_dashboard_and_mqtt(tiny_bundle, tmp_path):
    rng = np.random.default_rng(21)
    x = synth.machine(rng, LOOP_S).astype(np.float32)
    x = synth.inject(rng, x, at_s=RATTLE_S, kind="rattle", seconds=0.6)  # the harmless, recurring sound
    x = synth.inject(rng, x, at_s=WHINE_S, kind="whine", seconds=0.6)  # a real fault
    sf.write(tmp_path / "press.wav", x, SR)
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    broker = Broker(tmp_path).start()
    sources = [{"name": "press", "kind": "file", "path": str(tmp_path / "press.wav"), "realtime": True,
                "loop": True}]
    config, _ = write_config(tmp_path, bundle, sources, state_dir=str(tmp_path / "state"), cooldown_s=10.0)
    cfg = yaml.safe_load(config.read_text())
    web_port = free_port()
    cfg["web"] = {"enabled": True, "port": web_port, "token": "s3cret-token"}
    cfg["alerts"]["mqtt"] = {"enabled": True, "port": broker.port, "client_id": "fb-test"}
    config.write_text(yaml.safe_dump(cfg))
    proc = start(config)

    def stamped():  # journal lines carry no time of their own: read the alert's ISO start
        from datetime import datetime

        out = []
        for a in _journal(tmp_path):
            if a["kind"] == "alert":
                a["time_unix"] = datetime.fromisoformat(a["start"]).timestamp()
            out.append(a)
        return out

    def alerts_since(t0, near_s):
        return [a for a in stamped() if a["kind"] == "alert" and a["time_unix"] >= t0
                and abs(a["start_offset_s"] % LOOP_S - near_s) < 1.0]

    def feedbacks():
        return [a for a in _journal(tmp_path) if a["kind"] == "feedback"]

    try:
        rattle = wait_until(lambda: alerts_since(0, RATTLE_S), timeout=60)[0]
        wait_until(lambda: alerts_since(0, WHINE_S), timeout=30)

        # 1. The CLI: the rattle was normal.
        done = run_cli("feedback", rattle["event_id"], "normal", "--config", str(config), timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result["accepted_windows"] > 0 and result["bundle_id"] != result["bundle_id_before"]
        t1 = time.time() + 1.0
        wait_until(lambda: len(alerts_since(t1, WHINE_S)) >= 2, timeout=60)  # two more replays: the fault alerts
        assert alerts_since(t1, RATTLE_S) == [], "the accepted sound still alerts"
        fb = feedbacks()[-1]
        assert fb["event_id"] == rattle["event_id"] and fb["by"].startswith("cli") and fb["undo"] is False
        assert fb["threshold_before"] is not None and fb["threshold_after"] is not None

        # 2. Undo (CLI): the old bundle's verdicts are back, the rattle alerts again.
        done = run_cli("feedback", rattle["event_id"], "--undo", "--config", str(config), timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        assert json.loads(done.stdout.strip().splitlines()[-1])["bundle_id"] == result["bundle_id_before"]
        t2 = time.time() + 1.0
        again = wait_until(lambda: alerts_since(t2, RATTLE_S), timeout=40)[0]

        # 3. The dashboard: refused without the token, refused without the page's CSRF token, then done.
        url = f"http://127.0.0.1:{web_port}"
        body = {"event_id": again["event_id"], "action": "normal"}
        assert _post(url + "/api/feedback", body, {}) == 401
        auth = {"Authorization": "Bearer s3cret-token"}
        assert _post(url + "/api/feedback", body, auth) == 403
        with urllib.request.urlopen(urllib.request.Request(url + "/api/state", headers=auth), timeout=10) as r:
            csrf = json.load(r)["info"]["csrf"]
        assert _post(url + "/api/feedback", body, {**auth, "Origin": "http://evil.example"} |
                     {"X-Sentinel-CSRF": csrf}) == 403
        assert _post(url + "/api/feedback", body, {**auth, "X-Sentinel-CSRF": csrf}) == 202
        wait_until(lambda: len(feedbacks()) == 3 and feedbacks()[-1]["by"].startswith("dashboard"), timeout=60)

        # 4. MQTT: undo it from <prefix>/<source>/feedback.
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fb-sender")
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        client.publish("sentinel/press/feedback", json.dumps({**body, "label": "normal", "undo": True}), qos=1)
        wait_until(lambda: len(feedbacks()) == 4, timeout=60)
        client.loop_stop()
        client.disconnect()
        last = feedbacks()[-1]
        assert last["undo"] is True and last["by"].startswith("mqtt") and last["event_id"] == again["event_id"]
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        broker.kill()
