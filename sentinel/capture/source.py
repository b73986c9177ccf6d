"""What every audio source shares: a thread that writes mono float32 at the model rate into
its ring buffer, a stop event it checks at least every 100 ms, counters for health, and the
timeline that maps stream positions to wall-clock time across gaps."""

from __future__ import annotations

import random
import threading
import time
from abc import ABC, abstractmethod
from bisect import bisect_right

import numpy as np

from sentinel.capture.ring import RingBuffer


class Timeline:
    """Stream position -> wall-clock time, piecewise: a new segment starts wherever audio resumed
    after a gap (a reconnect, a stalled device), so an alert after ten outages is stamped with the
    time it was heard, not the time it would have been heard had nothing been lost. Written by the
    capture thread, read by the inference loop (one lock)."""

    def __init__(self, sample_rate: int, gap_tolerance_s: float = 1.0, keep: int = 1024) -> None:
        self.sample_rate, self.gap_tolerance_s, self.keep = sample_rate, gap_tolerance_s, keep
        self._pos: list[int] = []
        self._unix: list[float] = []
        self._lock = threading.Lock()
        self.lost_s = 0.0
        """Wall-clock seconds with no audio between segments (outages, stalls), since the start."""
        self.gaps = 0

    def note(self, pos: int, n: int, now: float, resumed: bool = False) -> None:
        """`n` samples at stream position `pos` arrived at `now`; `resumed`: the source just
        (re)connected, so they start a segment whatever their timing."""
        start = now - n / self.sample_rate
        with self._lock:
            if self._pos:
                expected = self._unix[-1] + (pos - self._pos[-1]) / self.sample_rate
                late = start - expected
                if not resumed and late <= self.gap_tolerance_s:
                    return  # on time, or a file read faster than real time: the segment goes on
                self.lost_s += max(0.0, late)
                self.gaps += 1
                if pos == self._pos[-1]:  # nothing was heard in the last segment: replace it
                    self._pos.pop()
                    self._unix.pop()
            self._pos.append(pos)
            self._unix.append(start)
            if len(self._pos) > self.keep:
                del self._pos[: len(self._pos) - self.keep]
                del self._unix[: len(self._unix) - self.keep]

    def unix(self, pos: int, fallback: float) -> float:
        """Wall-clock time of stream position `pos` (`fallback` + pos / rate before any audio)."""
        with self._lock:
            i = bisect_right(self._pos, pos) - 1
            if i < 0:
                return (self._unix[0] - (self._pos[0] - pos) / self.sample_rate) if self._pos \
                    else fallback + pos / self.sample_rate
            return self._unix[i] + (pos - self._pos[i]) / self.sample_rate

    def breaks(self, start: int, end: int) -> int | None:
        """The first segment start inside (start, end): a window there would splice two segments."""
        with self._lock:
            i = bisect_right(self._pos, start)
            return self._pos[i] if i < len(self._pos) and self._pos[i] < end else None


class Backoff:
    """Waits between reconnection attempts: `first` doubling up to `cap`, each jittered by +-20 % so
    sources that lost the same server do not retry in step; `reset` after a connection that held."""

    def __init__(self, first: float = 1.0, cap: float = 5.0) -> None:
        self.first, self.cap = first, cap
        self.delay = first

    def next(self) -> float:
        wait = self.delay * random.uniform(0.8, 1.2)
        self.delay = min(self.cap, self.delay * 2)
        return wait

    def reset(self) -> None:
        self.delay = self.first


class Source(ABC, threading.Thread):
    healthy_seconds = 2.0
    """A connection that delivered this much audio counts as having held: the next loss starts the
    back-off afresh (reset on audio delivered, not on time connected: a server that accepts and
    dies at once is not hammered)."""

    def __init__(self, name: str, sample_rate: int, buffer_seconds: float, log=None) -> None:
        threading.Thread.__init__(self, name=f"source-{name}", daemon=True)
        self.source_name = name
        self.sample_rate = sample_rate
        self.ring = RingBuffer(max(1, int(buffer_seconds * sample_rate)))
        self.stop_event = threading.Event()
        self.connected = False
        self.finished = False
        """True once a finite source (a file played once) has delivered everything."""
        self.reconnects = 0
        self.started_at = time.time()
        self.last_audio_at: float | None = None
        self.error: str | None = None
        self.consumed = 0
        """Absolute position the pipeline has read up to (it alone writes this)."""
        self.log = log.bind(source=name) if log is not None else None
        self.timeline = Timeline(sample_rate)
        self._resumed = True

    def resumed(self) -> None:
        """Called by a source when it (re)connects: its next audio starts a new segment."""
        self._resumed = True

    def emit(self, samples: np.ndarray) -> None:
        self.timeline.note(self.ring.written, len(samples), time.time(), self._resumed)
        self._resumed = False
        self.ring.write(samples)
        self.last_audio_at = time.monotonic()

    def unix(self, pos: int) -> float:
        """Wall-clock time at which stream position `pos` was heard."""
        return self.timeline.unix(pos, self.started_at)

    def disconnected(self, reason: str, heard: int, backoff: Backoff) -> bool:
        """Record a lost connection that delivered `heard` samples and wait before the next attempt;
        True if asked to stop meanwhile."""
        if heard >= self.healthy_seconds * self.sample_rate:
            backoff.reset()
        wait = backoff.next()
        self.error = reason
        self.reconnects += 1
        if self.log:
            self.log.warning("source disconnected", reason=reason, attempt=self.reconnects, retry_s=round(wait, 2))
        return self.stop_event.wait(wait)

    def stop(self) -> None:
        self.stop_event.set()

    def run(self) -> None:
        try:
            self.capture()
        except Exception as e:  # a source must never take the daemon down with it
            self.error = f"{type(e).__name__}: {e}"
            if self.log:
                self.log.error("source failed", error=self.error)
        finally:
            self.connected = False

    @abstractmethod
    def capture(self) -> None:
        """Read audio until `stop_event` is set (or the source ends), calling `emit`."""
