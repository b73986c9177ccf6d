"""Notifications to people, through Apprise (ntfy, Gotify, Telegram, e-mail, Slack, Matrix, JSON
webhooks and ~100 more), sent from the journal as the MQTT sink is.

One thread per rule (alerts.notify), each with its own persisted cursor: an alert moves the
cursor only once the service took it, so alerts raised while a service is down go out, in
order, when it is back (at least once: a crash between the send and the cursor write sends one
again, with the same event_id). A slow or dead service holds up only its own rule, never scoring.

A rule may hold alerts back: in its quiet hours (sent as one summary when they end) or past its
`max_per_hour` (summarised once the hour has room). What is held is counted in the cursor file,
so a restart does not lose the summary. Disarmed alerts are journalled but never sent.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sentinel.alerts.journal import JournalCursor, unsent_lines
from sentinel.alerts.settings import NotifyRule
from sentinel.credentials import secret_value
from sentinel.errors import ConfigError


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def in_quiet_hours(span: str | None, now: dt.datetime) -> bool:
    """Is the local time `now` inside HH:MM-HH:MM (which may cross midnight)?"""
    if span is None:
        return False
    start, end = (_minutes(x) for x in span.split("-"))
    t = now.hour * 60 + now.minute
    return start <= t < end if start <= end else (t >= start or t < end)


def alert_message(record: dict, dashboard_url: str | None) -> tuple[str, str]:
    """(title, body) for one alert: the source, its score against the threshold, when, and a link."""
    title = f"Sentinel: {record['source']} sounds wrong"
    body = (f"{record['source']}: score {record['opening_score']:.2f} above its threshold "
            f"{record['threshold']:.2f} at {record['start']}")
    body += f"\nevent {record['event_id']}"
    if dashboard_url:
        body += f"\n{dashboard_url}#alert={record['event_id']}"
    return title, body


class NotificationSink(threading.Thread):
    def __init__(self, rule: NotifyRule, key: str, journal: str | Path, dashboard_url: str | None = None,
                 clip_wait_s: float = 5.0, log=None, now: Callable[[], dt.datetime] | None = None,
                 retry_max_s: float = 30.0) -> None:
        super().__init__(name=f"notify-{key}", daemon=True)
        self.rule, self.key, self.log = rule, key, log
        self.journal = Path(journal)
        self.cursor = JournalCursor(f"{journal}.notify-{key}", journal)
        self.dashboard_url, self.clip_wait_s, self.retry_max_s = dashboard_url, clip_wait_s, retry_max_s
        self.now = now or (lambda: dt.datetime.now().astimezone())
        self.stop_event = threading.Event()
        self._wake = threading.Event()
        self.sent = 0
        """Messages the service accepted (alerts and summaries)."""
        self.failures = 0
        self._failing_since: float | None = None
        url = secret_value(rule.url, f"alerts.notify.{key}.url")
        import apprise  # only where notifications are asked for

        self._apprise = apprise.Apprise()
        if not self._apprise.add(url):
            raise ConfigError(f"alerts.notify.{key}.url: not a URL Apprise knows (see its list of services, e.g. "
                              "ntfy://topic, json://host:port/path, mailto://user:pass@host)")

    # -- what the daemon calls (never blocks) --------------------------------------------------
    def wake(self) -> None:
        self._wake.set()

    def close(self) -> None:
        self.stop_event.set()
        self._wake.set()
        if self.is_alive():
            self.join(timeout=1.0)

    # -- the sink's thread ----------------------------------------------------------------------
    def run(self) -> None:
        delay = 1.0
        while not self.stop_event.is_set():
            try:
                ok = self._pass()
            except Exception as e:  # never take the daemon down: the journal keeps the alerts
                ok = False
                if self.log:
                    self.log.exception("notification rule failed; alerts stay in the journal", rule=self.key,
                                       error=str(e))
            delay = 1.0 if ok else min(self.retry_max_s, delay * 2)
            self._wake.wait(1.0 if ok else delay)
            self._wake.clear()

    def _pass(self) -> bool:
        """Summaries that are due, then every new journal line; False when the service refused one
        (try again later, from the same line)."""
        if not self._send_summaries():
            return False
        for end, line in unsent_lines(self.journal, self.cursor, self.log):
            if self.stop_event.is_set():
                return True
            if not self._handle(line):
                return False
            self.cursor.save(end)
        return True

    def _handle(self, line: bytes) -> bool:
        try:
            record: dict[str, Any] = json.loads(line)
        except ValueError:
            return True  # the journal repairs torn lines itself; nothing to send here
        r = self.rule
        if record.get("kind") != "alert" or record.get("disarmed"):
            return True
        if r.sources is not None and record.get("source") not in r.sources:
            return True
        if r.min_score is not None and record.get("opening_score", float("-inf")) < r.min_score:
            return True
        extra = self.cursor.extra
        if in_quiet_hours(r.quiet_hours, self.now()):
            extra["quiet"] = extra.get("quiet", 0) + 1
            extra.setdefault("quiet_sources", {})[record["source"]] = extra.get("quiet_sources", {}).get(
                record["source"], 0) + 1
            return True
        if not self._room():
            extra["capped"] = extra.get("capped", 0) + 1
            return True
        title, body = alert_message(record, self.dashboard_url)
        return self._send(title, body, self._clip(record))

    # -- held back ------------------------------------------------------------------------------
    def _room(self) -> bool:
        if self.rule.max_per_hour is None:
            return True
        hour_ago = self.now().timestamp() - 3600
        recent = [t for t in self.cursor.extra.get("sent_at", []) if t > hour_ago]
        self.cursor.extra["sent_at"] = recent
        return len(recent) < self.rule.max_per_hour

    def _send_summaries(self) -> bool:
        extra = self.cursor.extra
        if extra.get("quiet") and not in_quiet_hours(self.rule.quiet_hours, self.now()) and self._room():
            by = ", ".join(f"{n} from {s}" for s, n in sorted(extra.get("quiet_sources", {}).items()))
            if not self._send("Sentinel: alerts held during quiet hours",
                              f"{extra['quiet']} alerts held during quiet hours {self.rule.quiet_hours}: {by}. "
                              "Every one is in the journal."):
                return False
            extra.pop("quiet", None)
            extra.pop("quiet_sources", None)
            self.cursor.save()
        if extra.get("capped") and self._room():
            if not self._send("Sentinel: alerts held back",
                              f"{extra['capped']} more alerts were held back by max_per_hour="
                              f"{self.rule.max_per_hour}. Every one is in the journal."):
                return False
            extra.pop("capped", None)
            self.cursor.save()
        return True

    # -- sending --------------------------------------------------------------------------------
    def _clip(self, record: dict) -> str | None:
        """The event's clip, once written (clip_post_s after the alert), where attachments are wanted."""
        clip = record.get("clip")
        if not clip or not self.rule.attach_clip:
            return None
        deadline = time.monotonic() + self.clip_wait_s
        while not Path(clip).is_file() and time.monotonic() < deadline and not self.stop_event.is_set():
            time.sleep(0.1)
        return clip if Path(clip).is_file() else None

    def _send(self, title: str, body: str, attach: str | None = None) -> bool:
        ok = bool(self._apprise.notify(title=title, body=body, attach=attach))
        if ok:
            self.sent += 1
            if self.rule.max_per_hour is not None:
                self.cursor.extra.setdefault("sent_at", []).append(self.now().timestamp())
            if self._failing_since is not None and self.log:
                self.log.info("notification service reachable again", rule=self.key,
                              down_s=round(time.monotonic() - self._failing_since, 1))
            self._failing_since = None
            return True
        self.failures += 1
        if self._failing_since is None:  # one line per outage, not one per retry
            self._failing_since = time.monotonic()
            if self.log:
                self.log.error("notification not delivered; retrying, alerts wait in the journal", rule=self.key)
        return False
