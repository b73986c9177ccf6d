"""MQTT sink: alerts from the journal to a broker, status and scores as they come, and Home
Assistant discovery.

The journal is the source of truth. This sink reads it from a persisted byte cursor and moves
the cursor past an alert only once the broker has acknowledged it (QoS 1), so alerts raised
while the broker was down go out, in order, when it is back: at least once (a crash between
the acknowledgement and the cursor write sends one again; `event_id` tells a consumer).

Everything runs on this sink's own thread and paho's network thread: the inference loop only
drops status and score records into bounded holders (`offer`) and wakes the sink after a
journal append (`wake`), so a dead or slow broker never delays scoring or ZeroMQ.

Topics (prefix `sentinel` by default):
  <prefix>/<source>/alert    the alert JSON, QoS 1, not retained
  <prefix>/<source>/alert_end  the event's end (its peak and duration, same event_id), QoS 1
  <prefix>/<source>/status   the latest status JSON, retained
  <prefix>/<source>/score    every window's score, QoS 0 (only with alerts.publish_scores)
  <prefix>/availability      online / offline (offline is also the last will)
  <prefix>/<source>/armed/set  command: ON arms the source, OFF disarms it (Home Assistant's switch)
  <prefix>/<source>/feedback   command: {"event_id": ..., "label": "normal"} ("undo": true takes it back)
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from sentinel.alerts.journal import JournalCursor, unsent_lines
from sentinel.alerts.settings import MqttConfig
from sentinel.credentials import secret_value
from sentinel.errors import ConfigError

ONLINE, OFFLINE = "online", "offline"


def default_client_id() -> str:
    return f"sentinel-{socket.gethostname()}"


def _node_id(client_id: str) -> str:
    """Home Assistant allows only [a-zA-Z0-9_-] in discovery topic ids (node and object ids)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", client_id)


def discovery_messages(cfg: MqttConfig, client_id: str, source: str, version: str) -> list[tuple[str, dict]]:
    """(topic, payload) of the Home Assistant discovery configs for one source: a problem sensor,
    the last score and whether the source is connected, all on one device per daemon."""
    node, prefix = _node_id(client_id), cfg.topic_prefix
    ha = cfg.home_assistant
    status = f"{prefix}/{source}/status"
    device = {
        "identifiers": [f"sentinel_{node}"],
        "name": ha.device_name or f"Sentinel {client_id}",
        "manufacturer": "Sentinel",
        "model": "sentinel-audio anomaly monitor",
        "sw_version": version,
    }
    common = {
        "availability_topic": f"{prefix}/availability",
        "payload_available": ONLINE,
        "payload_not_available": OFFLINE,
        "state_topic": status,
        "json_attributes_topic": status,
        "device": device,
        "origin": {"name": "sentinel-audio", "sw_version": version},
    }
    obj = _node_id(source)
    entities = [
        ("binary_sensor", "anomaly", {
            "name": f"{source} anomaly", "device_class": "problem",
            "value_template": "{{ 'ON' if value_json.anomaly else 'OFF' }}",
            "payload_on": "ON", "payload_off": "OFF",
        }),
        ("sensor", "score", {
            "name": f"{source} score", "state_class": "measurement", "icon": "mdi:waveform",
            # null before the first window: None leaves the sensor unknown rather than 0
            "value_template": "{{ value_json.last_score }}",
        }),
        ("binary_sensor", "running", {
            "name": f"{source} running", "device_class": "running",
            "value_template": "{{ 'OFF' if value_json.state == 'stopped' else 'ON' }}",
            "payload_on": "ON", "payload_off": "OFF",
        }),
        ("sensor", "state", {
            "name": f"{source} state", "icon": "mdi:state-machine",
            # learning / training show how far (learn_progress, 0-1) in the attributes and the state
            "value_template": "{{ value_json.state ~ (' ' ~ ((value_json.learn_progress * 100) | round | int) ~ '%' "
                              "if value_json.learn_progress is not none else '') }}",
        }),
        ("switch", "armed", {
            "name": f"{source} armed", "icon": "mdi:shield-check",
            "command_topic": f"{prefix}/{source}/armed/set", "payload_on": "ON", "payload_off": "OFF",
            "value_template": "{{ 'ON' if value_json.armed else 'OFF' }}", "state_on": "ON", "state_off": "OFF",
        }),
        ("binary_sensor", "connected", {
            "name": f"{source} connected", "device_class": "connectivity", "entity_category": "diagnostic",
            "value_template": "{{ 'ON' if value_json.connected else 'OFF' }}",
            "payload_on": "ON", "payload_off": "OFF",
        }),
    ]
    out = []
    for component, what, fields in entities:
        # Home Assistant 2026.4 takes the entity id from default_entity_id (with its domain) and no
        # longer from object_id; object_id stays for versions before 2025.10, which know only it.
        out.append((f"{ha.discovery_prefix}/{component}/{node}/{obj}_{what}/config",
                    {**fields, "unique_id": f"sentinel_{node}_{obj}_{what}",
                     "default_entity_id": f"{component}.{obj}_{what}", "object_id": f"{obj}_{what}", **common}))
    return out


class MqttSink(threading.Thread):
    def __init__(self, cfg: MqttConfig, journal: str | Path, log=None, version: str = "0", arming=None,
                 feedback=None) -> None:
        super().__init__(name="mqtt", daemon=True)
        self.cfg, self.log, self.version = cfg, log, version
        self.arming = arming
        self.feedback = feedback
        """Called as feedback(event_id, action, by) for <prefix>/<source>/feedback {"event_id", "label"}."""
        """sentinel.alerts.arming.Arming: <prefix>/<source>/armed/set ON|OFF arms or disarms a source."""
        self.client_id = cfg.client_id or default_client_id()
        self.journal = Path(journal)
        self.cursor = JournalCursor(cfg.cursor or f"{journal}.mqtt-cursor", journal)
        self.stop_event = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._statuses: dict[str, dict] = {}  # latest per source: a backlog of old statuses is worthless
        self._scores: deque[dict] = deque(maxlen=1000)  # bounded: oldest dropped while the broker lags
        self._discovered: set[str] = set()
        self._connected = threading.Event()
        self._acked: dict[int, int] = {}  # mid -> sequence number of its acknowledgement (mids are reused)
        self._ack_seq = 0
        self._ack_cond = threading.Condition()
        self._refused: str | None = None
        self.client = self._make_client()

    # -- set-up ---------------------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        c = self.cfg
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=True,
                             protocol=mqtt.MQTTv311)
        client.will_set(f"{c.topic_prefix}/availability", OFFLINE, qos=1, retain=True)
        if c.username is not None:
            client.username_pw_set(c.username, secret_value(c.password, "alerts.mqtt.password"))
        if c.tls:
            if c.ca_file is not None and not os.access(c.ca_file, os.R_OK):
                raise ConfigError(f"alerts.mqtt.ca_file {c.ca_file}: cannot read it; give the broker's CA "
                                  "certificate (PEM)")
            try:
                client.tls_set(ca_certs=c.ca_file, cert_reqs=ssl.CERT_REQUIRED)
            except (ssl.SSLError, OSError) as e:
                raise ConfigError(f"alerts.mqtt.ca_file {c.ca_file}: not a usable CA certificate ({e})") from None
        client.reconnect_delay_set(min_delay=1, max_delay=max(1, round(c.reconnect_max_s)))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    # -- what the daemon calls (never blocks) --------------------------------------------------
    def offer(self, topic: str, record: dict) -> None:
        """A non-durable record from the inference loop: status.<source> or score.<source>."""
        kind, _, source = topic.partition(".")
        with self._lock:
            if kind == "status":
                self._statuses[source] = record
            elif kind == "score":
                self._scores.append(record)
        self._wake.set()

    def wake(self) -> None:
        """The journal has grown."""
        self._wake.set()

    def close(self) -> None:
        """Say `offline` (retained) and disconnect; within a second."""
        self.stop_event.set()
        self._wake.set()
        if self.is_alive():
            self.join(timeout=1.0)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # -- paho callbacks (its network thread) ----------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ARG002
        if reason_code.is_failure:
            reason = str(reason_code)
            if reason != self._refused and self.log:  # once per reason, not at every retry
                self.log.error("MQTT broker refused the connection; check alerts.mqtt.username/password/client_id",
                               broker=f"{self.cfg.host}:{self.cfg.port}", reason=reason)
            self._refused = reason
            return
        self._refused = None
        client.publish(f"{self.cfg.topic_prefix}/availability", ONLINE, qos=1, retain=True)
        if self.arming is not None:
            client.subscribe(f"{self.cfg.topic_prefix}/+/armed/set", qos=1)
        if self.feedback is not None:
            client.subscribe(f"{self.cfg.topic_prefix}/+/feedback", qos=1)
        with self._lock:
            self._discovered.clear()  # the broker may have lost its retained configs
        self._connected.set()
        self._wake.set()
        if self.log:
            self.log.info("MQTT connected", broker=f"{self.cfg.host}:{self.cfg.port}")

    def _on_message(self, client, userdata, msg) -> None:  # noqa: ARG002
        """A command: <prefix>/<source>/armed/set with ON (arm) or OFF (disarm, until armed again)."""
        parts = msg.topic.split("/")
        if parts[-1] == "feedback" and self.feedback is not None:
            self._on_feedback(msg.topic, msg.payload)
            return
        payload = msg.payload.decode(errors="replace").strip().upper()
        if self.arming is None or len(parts) < 3 or parts[-2:] != ["armed", "set"] or payload not in ("ON", "OFF"):
            if self.log:
                self.log.warning("MQTT command ignored; send ON or OFF to <prefix>/<source>/armed/set",
                                 topic=msg.topic, payload=payload[:40])
            return
        source = parts[-3]
        if payload == "ON":
            self.arming.arm(source)
        else:
            self.arming.disarm(source, by="mqtt")
        if self.log:
            self.log.info("armed" if payload == "ON" else "disarmed", source=source, by="mqtt")

    def _on_feedback(self, topic: str, payload: bytes) -> None:
        """<prefix>/<source>/feedback with {"event_id": ..., "label": "normal"} (or "undo": true)."""
        try:
            msg = json.loads(payload)
            label = msg.get("label", "normal")
            if label != "normal":
                raise ValueError(f"label {label!r}: only 'normal' is understood")
            self.feedback(str(msg.get("event_id", "")), "undo" if msg.get("undo") else "normal", f"mqtt {topic}")
        except (ValueError, AttributeError, TypeError) as e:
            if self.log:
                self.log.warning("MQTT feedback ignored; send {\"event_id\": ..., \"label\": \"normal\"}",
                                 topic=topic, error=str(e)[:200])
            return
        if self.log:
            self.log.info("feedback queued", topic=topic)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ARG002
        was = self._connected.is_set()
        self._connected.clear()
        if was and self.log and not self.stop_event.is_set():
            self.log.warning("MQTT disconnected; alerts wait in the journal", reason=str(reason_code))

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:  # noqa: ARG002
        with self._ack_cond:
            self._ack_seq += 1
            self._acked[mid] = self._ack_seq
            self._ack_cond.notify_all()

    def _publish_acked(self, topic: str, payload: str, retain: bool, timeout: float | None) -> bool:
        """Publish with QoS 1 and wait for the broker's acknowledgement (True) or the timeout/stop (False).
        paho keeps an unacknowledged QoS 1 message and sends it again after a reconnect, so without a
        timeout this waits however long the broker is away (a stop leaves it for the next start)."""
        with self._ack_cond:
            before = self._ack_seq
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._ack_cond:
            while self._acked.get(info.mid, -1) <= before:
                if deadline is not None and time.monotonic() > deadline:
                    return False
                if self.stop_event.is_set() and deadline is None:
                    return False
                self._ack_cond.wait(0.05)
        return True

    # -- the sink's thread ----------------------------------------------------------------------
    def run(self) -> None:
        c = self.cfg
        self.client.connect_async(c.host, c.port, keepalive=c.keepalive_s)
        self.client.loop_start()
        try:
            while not self.stop_event.is_set():
                self._wake.wait(0.5)
                self._wake.clear()
                if not self._connected.is_set():
                    continue
                self._send_live()
                self._send_journal()
        except Exception as e:  # the sink must never take the daemon down; the journal keeps the alerts
            if self.log:
                self.log.exception("MQTT sink failed; alerts stay in the journal", error=str(e))
        finally:
            self._shutdown()

    def _send_live(self) -> None:
        prefix = self.cfg.topic_prefix
        with self._lock:
            statuses, self._statuses = self._statuses, {}
            scores = list(self._scores)
            self._scores.clear()
            new = [s for s in statuses if s not in self._discovered]
            self._discovered.update(new)
        if self.cfg.home_assistant.enabled:
            for source in new:
                for topic, payload in discovery_messages(self.cfg, self.client_id, source, self.version):
                    self.client.publish(topic, json.dumps(payload), qos=1, retain=True)
        for source, record in statuses.items():
            self.client.publish(f"{prefix}/{source}/status", json.dumps(record), qos=0, retain=True)
        for record in scores:
            self.client.publish(f"{prefix}/{record['source']}/score", json.dumps(record), qos=0)

    def _send_journal(self) -> None:
        """Every complete journal line past the cursor, one acknowledged alert at a time (in order)."""
        for end, line in unsent_lines(self.journal, self.cursor, self.log):
            if not self._deliver(line):
                return  # stopping: the cursor stays before this line
            self.cursor.save(end)

    def _deliver(self, line: bytes) -> bool:
        try:
            record: dict[str, Any] = json.loads(line)
            topic = record.pop("topic")
        except (ValueError, KeyError, TypeError):
            if self.log:
                self.log.warning("unreadable journal line skipped by the MQTT sink", journal=str(self.journal))
            return True
        kind, _, source = str(topic).partition(".")
        if kind not in ("alert", "alert_end"):
            return True
        return self._publish_acked(f"{self.cfg.topic_prefix}/{source}/{kind}", json.dumps(record), False, None)

    def _shutdown(self) -> None:
        if self._connected.is_set():
            self._publish_acked(f"{self.cfg.topic_prefix}/availability", OFFLINE, True, 0.5)
        self.client.disconnect()
        self.client.loop_stop()
