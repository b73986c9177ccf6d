"""From window scores to events: threshold, debounce (k anomalous of the last n), cooldown.

One event gives one alert: it opens when k of the last n windows are above the threshold, is
reported at once (latency matters more than knowing its end), keeps growing while windows stay
anomalous, and a new one may open only `cooldown_s` after the previous alert. When its windows
stop being anomalous it closes, and `closed()` hands over what it was: its real peak and end.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass
class Event:
    start_s: float
    """Stream offset where the first anomalous window of the event began."""
    end_s: float
    """End of the window that opened the event (of an event's last anomalous window, once closed)."""
    peak: float
    """The highest window score: of the windows that opened the event, or of the whole event once closed."""
    threshold: float


class Decider:
    def __init__(self, threshold: float, k: int = 1, n: int = 1, cooldown_s: float = 10.0) -> None:
        if not 1 <= k <= n:
            raise ValueError(f"debounce needs 1 <= k <= n, got k={k}, n={n}")
        self.threshold, self.k, self.n, self.cooldown_s = threshold, k, n, cooldown_s
        self._recent: deque[tuple[float, float, float]] = deque(maxlen=n)  # (start, end, score)
        self._open = False
        self._event: Event | None = None
        self._closed: Event | None = None
        self._last_alert_end: float | None = None
        self._last_end = 0.0

    def update(self, start_s: float, end_s: float, score: float) -> Event | None:
        """Feed one window's score (in stream order); returns an Event when an alert is due."""
        self._recent.append((start_s, end_s, score))
        self._last_end = end_s
        hits = [w for w in self._recent if w[2] > self.threshold]
        if len(hits) < self.k:
            if self._open and self._event is not None:
                self._closed = self._event
            self._open, self._event = False, None
            return None
        if self._open:
            if self._event is not None and score > self.threshold:
                self._event.end_s = end_s
                self._event.peak = max(self._event.peak, score)
            return None
        cooling = self._last_alert_end is not None and end_s - self._last_alert_end < self.cooldown_s
        if cooling:
            return None
        self._open = True
        self._last_alert_end = end_s
        opened = Event(start_s=hits[0][0], end_s=end_s, peak=max(w[2] for w in hits), threshold=self.threshold)
        self._event = Event(opened.start_s, opened.end_s, opened.peak, opened.threshold)
        return opened

    def close_now(self) -> Event | None:
        """Close the open event, if any, as far as it got (the stream stopped); it is returned here,
        not by `closed()`."""
        out = self._event if self._open else None
        self._open, self._event, self._closed = False, None, None
        return out

    def closed(self) -> Event | None:
        """The event that closed at the last `update` (once; None otherwise): from its first to
        its last anomalous window, with the highest score it reached."""
        out, self._closed = self._closed, None
        return out

    def event_open(self) -> bool:
        """An event is on: its windows are still anomalous, or its alert is less than `cooldown_s` old
        (what a Home Assistant problem sensor shows)."""
        if self._open:
            return True
        return self._last_alert_end is not None and self._last_end - self._last_alert_end < self.cooldown_s
