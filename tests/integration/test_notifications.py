"""Notifications to people through Apprise, to a real HTTP server on loopback (Apprise's json://):
from the journal, once per rule, in order across an outage, held in quiet hours and past
max_per_hour with a summary after, and never for a disarmed source."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import re
import subprocess
import threading
import time

import numpy as np
import soundfile as sf
import yaml

from sentinel.alerts.journal import Journal
from sentinel.alerts.notifications import NotificationSink
from sentinel.alerts.settings import NotifyRule
from tests.conftest import sentinel_cmd
from tests.helpers.net import free_port, wait_until
from tests.integration.test_daemon import receive, write_config


class Target:
    """A webhook receiver: every JSON body Apprise posts, in arrival order. Can go down and come back
    on the same port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.got: list[dict] = []
        self._server: http.server.ThreadingHTTPServer | None = None

    def start(self) -> Target:
        got = self.got

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook"

    def event_ids(self) -> list[str]:
        return [m.group(1) for g in self.got if (m := re.search(r"event ([0-9a-f]{32})", g["message"]))]


def _alert(i: int, source: str = "pump", score: float = 9.0) -> dict:
    return {"topic": f"alert.{source}", "kind": "alert", "source": source, "event_id": f"{i:032x}",
            "opening_score": score, "threshold": 3.5, "start": f"2026-12-01T10:00:{i:02d}+00:00", "clip": None}


class Clock:
    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def __call__(self) -> dt.datetime:
        return self.at


def _sink(tmp_path, rule: NotifyRule, clock=None) -> tuple[Journal, NotificationSink]:
    path = tmp_path / "alerts.jsonl"
    journal = Journal(path)
    sink = NotificationSink(rule, "t", path, now=clock, retry_max_s=1.0)
    sink.start()
    return journal, sink


def test_alerts_reach_every_rule_once_and_a_disarmed_source_notifies_nobody(tiny_bundle, machine_data, tmp_path):
    a, b = Target().start(), Target().start()
    # An anomaly, then normal sound long enough for the event to close: one event per loop (~9 s).
    parts = ["anomalous_0", "normal_0", "normal_1"]
    x = np.concatenate([sf.read(machine_data["test"] / f"{p}.wav", dtype="float32")[0] for p in parts])
    sf.write(tmp_path / "loop.wav", x, 16000)
    src = {"name": "loud", "kind": "file", "path": str(tmp_path / "loop.wav"), "loop": True}
    config, endpoint = write_config(tmp_path, tiny_bundle, [src], cooldown_s=0.5)
    cfg = yaml.safe_load(config.read_text())
    cfg["alerts"]["notify"] = [{"url": a.url, "name": "phone"}, {"url": b.url, "name": "team", "attach_clip": False}]
    cfg["alerts"]["arming_file"] = str(tmp_path / "arming.json")
    config.write_text(yaml.safe_dump(cfg))
    proc = subprocess.Popen([*sentinel_cmd(), "run", "--config", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    # Once it runs, disarmed for 12 s (longer than one 9 s loop), as for planned maintenance; it
    # re-arms by itself.
    assert receive(endpoint, "status.", lambda g: len(g) >= 1, timeout_s=90), "the daemon never started"
    subprocess.run([*sentinel_cmd(), "disarm", "loud", "--for", "12s", "--config", str(config)], check=True,
                   capture_output=True)
    journal_path = tmp_path / "alerts.jsonl"

    def alerts() -> list[dict]:
        if not journal_path.exists():
            return []
        return [r for r in Journal.read(journal_path) if r["kind"] == "alert"]

    try:
        assert wait_until(lambda: any(r["disarmed"] for r in alerts()), timeout=60), "no alert while disarmed"
        assert wait_until(lambda: len([r for r in alerts() if not r["disarmed"]]) >= 2, timeout=90), \
            "no alerts after re-arming"
        armed = [r["event_id"] for r in alerts() if not r["disarmed"]]
        assert wait_until(lambda: set(armed) <= set(a.event_ids()) and set(armed) <= set(b.event_ids()),
                          timeout=30), "an armed alert did not reach both rules"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
        a.stop()
        b.stop()
    journalled = alerts()
    disarmed = {r["event_id"] for r in journalled if r["disarmed"]}
    for target in (a, b):
        ids = target.event_ids()
        assert not disarmed & set(ids), "a disarmed alert was notified"
        assert len(ids) == len(set(ids)), "an alert was sent twice to one rule"
        order = [r["event_id"] for r in journalled if r["event_id"] in ids]
        assert ids == order, "notifications out of journal order"
    message = next(g for g in a.got if "event" in g["message"])
    assert "loud" in message["title"] and "threshold" in message["message"]
    assert any(g.get("attachments") for g in a.got), "the phone rule gets the clips"
    assert not any(g.get("attachments") for g in b.got)
    assert proc.returncode == 0, err[-2000:]


def test_an_outage_of_20_s_delays_notifications_and_loses_none(tmp_path):
    target = Target()  # not started: the service is down
    journal, sink = _sink(tmp_path, NotifyRule(url=target.url))
    try:
        t0 = time.monotonic()
        for i in range(6):
            journal.append(_alert(i))
            sink.wake()
            time.sleep(3)  # alerts keep coming while the service is down
        while time.monotonic() - t0 < 20:
            time.sleep(0.2)
        assert target.got == [] and sink.failures > 0
        target.start()
        assert wait_until(lambda: len(target.event_ids()) >= 6, timeout=30), target.event_ids()
        assert target.event_ids() == [f"{i:032x}" for i in range(6)]  # every one, once, in order
    finally:
        sink.close()
        journal.close()
        target.stop()


def test_quiet_hours_hold_alerts_and_a_summary_follows(tmp_path):
    target = Target().start()
    clock = Clock(dt.datetime(2026, 12, 1, 23, 30).astimezone())
    journal, sink = _sink(tmp_path, NotifyRule(url=target.url, quiet_hours="22:00-06:30"), clock)
    try:
        for i in range(3):
            journal.append(_alert(i, source="pump" if i < 2 else "fan"))
        sink.wake()
        assert wait_until(lambda: sink.cursor.extra.get("quiet") == 3, timeout=10)
        assert target.got == []
        assert len(Journal.read(tmp_path / "alerts.jsonl")) == 3  # journalled all the same
        clock.at = dt.datetime(2026, 12, 2, 6, 31).astimezone()  # the quiet hours end
        sink.wake()
        assert wait_until(lambda: target.got, timeout=10)
        summary = target.got[0]["message"]
        assert "3 alerts held during quiet hours 22:00-06:30" in summary and "2 from pump" in summary
        journal.append(_alert(9))  # outside quiet hours an alert goes out as it comes
        sink.wake()
        assert wait_until(lambda: target.event_ids() == [f"{9:032x}"], timeout=10)
        assert len(target.got) == 2
    finally:
        sink.close()
        journal.close()
        target.stop()


def test_max_per_hour_caps_and_summarises(tmp_path):
    target = Target().start()
    clock = Clock(dt.datetime(2026, 12, 1, 12, 0).astimezone())
    journal, sink = _sink(tmp_path, NotifyRule(url=target.url, max_per_hour=2), clock)
    try:
        for i in range(5):
            journal.append(_alert(i))
        sink.wake()
        assert wait_until(lambda: sink.cursor.extra.get("capped") == 3, timeout=10)
        assert target.event_ids() == [f"{0:032x}", f"{1:032x}"]  # the first two, then the cap
        clock.at += dt.timedelta(minutes=61)  # the hour has room again
        sink.wake()
        assert wait_until(lambda: len(target.got) == 3, timeout=10)
        assert "3 more alerts were held back by max_per_hour=2" in target.got[2]["message"]
    finally:
        sink.close()
        journal.close()
        target.stop()


def test_a_bad_rule_is_a_one_line_error(tiny_bundle, machine_data, tmp_path):
    src = [{"name": "a", "kind": "file", "path": str(machine_data["test"] / "normal_0.wav")}]
    config, _ = write_config(tmp_path, tiny_bundle, src)
    cfg = yaml.safe_load(config.read_text())
    cfg["alerts"]["notify"] = [{"url": "json://127.0.0.1:9/x", "quiet_hours": "25:00-06:00"}]
    config.write_text(yaml.safe_dump(cfg))
    proc = subprocess.run([*sentinel_cmd(), "check-config", str(config)], capture_output=True, text=True)
    assert proc.returncode == 1 and "alerts.notify.0.quiet_hours" in proc.stdout
    cfg["alerts"]["notify"] = [{"url": "nonsense-service://x"}]
    config.write_text(yaml.safe_dump(cfg))
    proc = subprocess.run([*sentinel_cmd(), "run", "--config", str(config)], capture_output=True, text=True,
                          timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and "alerts.notify.0.url: not a URL Apprise knows" in lines[-1], proc.stderr
