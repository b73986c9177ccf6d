"""What the dashboard shows, kept apart from how it is served.

The inference loop hands every record to `record()`: a short lock and an append to bounded
deques, nothing else, so a browser (or a slow one) never holds up scoring. Each kept item
carries a sequence number; a page asks for what came after the last one it saw.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_ALERTS = 200


@dataclass
class _SourceView:
    points: deque  # (seq, end_unix, score, start_offset_s)
    status: dict[str, Any] = field(default_factory=dict)
    threshold: float | None = None
    lag_s: float | None = None
    windows: int = 0


class DashboardState:
    def __init__(self, history_s: float, hop_s: float, info: dict[str, Any] | None = None) -> None:
        self.history_s = history_s
        self._maxlen = max(100, int(history_s / max(hop_s, 1e-3)) + 100)
        self._lock = threading.Lock()
        self._seq = 0
        self._sources: dict[str, _SourceView] = {}
        self._alerts: deque[tuple[int, dict]] = deque(maxlen=MAX_ALERTS)
        self.info: dict[str, Any] = dict(info or {})
        """Bundle and calibration facts for the side panel (set once by the daemon)."""

    # -- written by the inference loop ----------------------------------------------------------
    def record(self, topic: str, record: dict) -> None:
        kind, _, source = topic.partition(".")
        with self._lock:
            self._seq += 1
            view = self._view(source)
            if kind == "score":
                view.points.append((self._seq, record["end_unix"], record["score"], record["start_offset_s"]))
                view.lag_s = record.get("lag_s")
                view.windows += 1
            elif kind == "status":
                view.status = record
            elif kind == "alert":
                self._alerts.append((self._seq, record))
            elif kind == "alert_end":
                self._close_alert(record)
            elif kind == "feedback":
                self._mark_feedback(record)

    def _mark_feedback(self, fb: dict) -> None:
        """"That was normal" (or its undo) was applied: the alert row says so. Caller holds the lock."""
        for i, (_, a) in enumerate(self._alerts):
            if a.get("event_id") == fb.get("event_id"):
                del self._alerts[i]
                self._alerts.append((self._seq, {**a, "feedback": None if fb.get("undo") else fb.get("label")}))
                return

    def _close_alert(self, end: dict) -> None:
        """An event closed: its alert row gets the real peak and duration (and a new sequence
        number, so a page that has the row hears of the change). Caller holds the lock."""
        for i, (_, a) in enumerate(self._alerts):
            if a.get("event_id") == end.get("event_id"):
                merged = {**a, "peak_score": end["peak_score"], "duration_s": end["duration_s"],
                          "end": end["end"], "end_offset_s": end["end_offset_s"]}
                del self._alerts[i]
                self._alerts.append((self._seq, merged))
                return

    def set_thresholds(self, thresholds: dict[str, float]) -> None:
        with self._lock:
            for name, thr in thresholds.items():
                self._view(name).threshold = thr

    def load_alerts(self, journal: str | Path) -> None:
        """The last alerts of earlier runs, so a restart does not empty the list."""
        from sentinel.alerts.journal import last_lines  # the newest rotated journal too, after a rotation

        lines = [x.decode("utf-8", errors="replace") for x in last_lines(journal, MAX_ALERTS)]
        with self._lock:
            for line in lines:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue  # a torn last line: the journal's own business
                topic = str(rec.pop("topic", ""))
                self._seq += 1
                if topic.startswith("alert."):
                    self._alerts.append((self._seq, rec))
                elif topic.startswith("alert_end."):
                    self._close_alert(rec)
                elif topic.startswith("feedback."):
                    self._mark_feedback(rec)

    def _view(self, source: str) -> _SourceView:
        view = self._sources.get(source)
        if view is None:
            view = self._sources[source] = _SourceView(points=deque(maxlen=self._maxlen))
        return view

    # -- read by the web thread ------------------------------------------------------------------
    @property
    def seq(self) -> int:
        with self._lock:
            return self._seq

    def sources(self) -> list[str]:
        with self._lock:
            return list(self._sources)

    def snapshot(self, after: int = 0, span_s: float = 600.0) -> dict[str, Any]:
        """Everything with a sequence number above `after` (points: at most the last `span_s`)."""
        now = time.time()
        with self._lock:
            out: dict[str, Any] = {"seq": self._seq, "time": now, "sources": {}, "alerts": []}
            for name, v in self._sources.items():
                pts = []
                for q, t, s, _ in reversed(v.points):  # newest first: stop at what the page has
                    if q <= after or t < now - span_s:
                        break
                    pts.append((round(t, 3), round(s, 4)))
                pts.reverse()
                out["sources"][name] = {
                    "points": pts, "threshold": v.threshold, "lag_s": v.lag_s, "windows": v.windows,
                    "status": v.status,
                }
            out["alerts"] = [a for q, a in self._alerts if q > after]
        return out

    def alert(self, event_id: str) -> dict | None:
        with self._lock:
            return next((a for _, a in self._alerts if a.get("event_id") == event_id), None)

    def scores_between(self, source: str, t0: float, t1: float) -> list[tuple[float, float]]:
        """(start offset s, score) of the source's windows that start in [t0, t1] (stream offsets)."""
        with self._lock:
            v = self._sources.get(source)
            if v is None:
                return []
            return [(off, s) for _, _, s, off in v.points if t0 <= off <= t1]
