"""What goes over the wire and into the journal. Bump SCHEMA_VERSION on any incompatible change."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import asdict, dataclass, field

SCHEMA_VERSION = 2
"""2: the alert's `peak_score` became `opening_score` (what it was); `alert_end` carries the peak."""


def utc_iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class Alert:
    """One anomaly event on one source (topic `alert.<source>`)."""

    source: str
    start: str
    """UTC ISO-8601 time of the first anomalous window's start."""
    end: str
    """UTC ISO-8601 time of the end of the window that raised the alert."""
    start_offset_s: float
    """Same instants as seconds since the source started."""
    end_offset_s: float
    opening_score: float
    """The highest score of the windows that opened the event (the event may go on higher: its
    `alert_end` says how high)."""
    threshold: float
    bundle_id: str
    clip: str | None
    """WAV of the audio around the event; written `clip_post_s` seconds after the alert."""
    disarmed: bool = False
    """The source was disarmed: journalled and published, but no notification and no HA problem."""
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    schema: int = SCHEMA_VERSION
    kind: str = "alert"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class AlertEnd:
    """The event an alert opened has closed (topic `alert_end.<source>`, same `event_id`)."""

    source: str
    event_id: str
    start: str
    end: str
    """UTC ISO-8601 time of the end of the event's last anomalous window."""
    start_offset_s: float
    end_offset_s: float
    duration_s: float
    peak_score: float
    """The highest window score over the whole event."""
    threshold: float
    bundle_id: str
    schema: int = SCHEMA_VERSION
    kind: str = "alert_end"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Status:
    """Heartbeat of one source (topic `status.<source>`)."""

    source: str
    connected: bool
    last_score: float | None
    windows_scored: int
    dropped_samples: int
    time: str
    anomaly: bool = False
    """An event is open on this source: anomalous windows, or an alert less than cooldown_s old."""
    audio_lost_s: float = 0.0
    """Seconds of audio never scored since the daemon started: outages, stalls and overruns."""
    reconnects: int = 0
    """Times the source lost its connection (or device) and tried again."""
    armed: bool = True
    """False while the source is disarmed (sentinel disarm): `anomaly` then stays false."""
    bundle_id: str = ""
    """The bundle this source is scored with (sources[].bundle, or daemon.bundle)."""
    state: str = "monitoring"
    """monitoring, stopped (quieter than its machine ever is, for sources[].stopped_after_s: no alerts),
    disconnected, or (sources[].learn) learning (recording its normal audio) and training."""
    lag_s: float | None = None
    """Seconds from the last scored window's last sample being heard to its decision (live sources)."""
    learn_progress: float | None = None
    """learning: share of the minutes recorded; training: share of the steps done; else None."""
    schema: int = SCHEMA_VERSION
    kind: str = "status"

    def to_dict(self) -> dict:
        return asdict(self)
