"""Replays a recording: at real-time pace (the demo) or as fast as possible (tests, benchmarks)."""

from __future__ import annotations

import time
from pathlib import Path

from sentinel.audio import load_audio
from sentinel.capture.source import Source


class FileSource(Source):
    def __init__(self, name: str, path: str | Path, sample_rate: int, buffer_seconds: float,
                 realtime: bool = True, loop: bool = False, chunk_seconds: float = 0.05, log=None) -> None:
        super().__init__(name, sample_rate, buffer_seconds, log)
        self.path, self.realtime, self.loop = Path(path), realtime, loop
        self.chunk = max(1, int(chunk_seconds * sample_rate))
        self.wave = load_audio(self.path, sample_rate).numpy()  # fails at start-up, naming the file

    def _pace(self, sent: int, t0: float) -> bool:
        """Wait until the next chunk is due; False if stopped meanwhile."""
        if self.realtime:
            ahead = sent / self.sample_rate - (time.monotonic() - t0)
            return not (ahead > 0 and self.stop_event.wait(ahead))
        # Full speed, but never lap the reader: a replay has no reason to lose audio.
        while self.ring.written - self.consumed > self.ring.capacity // 2:
            if self.stop_event.wait(0.01):  # coarse: many replays polling fast would steal the scorer's CPU
                return False
        return not self.stop_event.is_set()

    def capture(self) -> None:
        self.connected = True
        t0, sent = time.monotonic(), 0
        self.started_at = time.time()  # sample 0 is due now: alert times and lags count from here
        while True:
            for i in range(0, self.wave.size, self.chunk):
                if not self._pace(sent, t0):
                    return
                block = self.wave[i : i + self.chunk]
                self.emit(block)
                sent += block.size
            if not self.loop:
                break
        self.finished = True
