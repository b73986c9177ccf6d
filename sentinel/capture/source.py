"""What every audio source shares: a thread that writes mono float32 at the model rate into
its ring buffer, a stop event it checks at least every 100 ms, and counters for health."""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod

import numpy as np

from sentinel.capture.ring import RingBuffer


class Source(ABC, threading.Thread):
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

    def emit(self, samples: np.ndarray) -> None:
        self.ring.write(samples)
        self.last_audio_at = time.monotonic()

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
