"""A network stream (RTSP/RTSPS, or any URL FFmpeg reads) through PyAV: audio only, any codec,
resampled to the model rate. A dead, stalled or silent stream, or one that ends quietly, is a
disconnect: reconnect with exponential back-off and jitter, logging every attempt.

Back-off: 1 s doubling up to `backoff[1]` (5 s by default), and back to 1 s once a connection has
delivered `Source.healthy_seconds` (2 s) of audio. Anchors: BirdNET-Go's FFmpeg supervisor waits 5 s doubling to
2 min (its failure count is reset when a process starts); Frigate's watchdog looks every 10 s and
restarts at once. We cap low because the cost of an attempt is one TCP connect, while every second
of waiting on a server that is already back is a second of audio nobody hears; and we reset on
audio delivered, not on time connected, because a server that accepts and then dies at once
should not be hammered either.
"""

from __future__ import annotations

import time

import numpy as np

from sentinel.capture.source import Backoff, Source


class StreamSource(Source):
    def __init__(self, name: str, url: str, sample_rate: int, buffer_seconds: float, stall_seconds: float = 5.0,
                 silence_seconds: float = 30.0, backoff: tuple[float, float] = (1.0, 5.0), log=None) -> None:
        super().__init__(name, sample_rate, buffer_seconds, log)
        self.url, self.stall_seconds, self.silence_seconds = url, stall_seconds, silence_seconds
        self.backoff = backoff

    def _pull(self) -> str:
        """Decode until the stream fails or stop is asked; returns why it ended."""
        import av

        options = {"rtsp_transport": "tcp"} if self.url.startswith(("rtsp://", "rtsps://")) else {}
        with av.open(self.url, options=options, timeout=(self.stall_seconds, self.stall_seconds)) as container:
            if not container.streams.audio:
                return "no audio stream"
            resampler = av.AudioResampler(format="flt", layout="mono", rate=self.sample_rate)
            self.connected = True
            self.resumed()
            if self.log:
                self.log.info("source connected", url=self.url)
            heard = time.monotonic()
            for frame in container.decode(container.streams.audio[0]):
                for out in resampler.resample(frame):
                    samples = out.to_ndarray().reshape(-1).astype(np.float32)
                    self.emit(samples)
                    if np.abs(samples).max(initial=0.0) > 1e-4:
                        heard = time.monotonic()
                if self.stop_event.is_set():
                    return "stopped"
                if time.monotonic() - heard > self.silence_seconds:
                    return f"silent for {self.silence_seconds:.0f} s"
        return "stream ended"

    def capture(self) -> None:
        backoff = Backoff(*self.backoff)
        while not self.stop_event.is_set():
            heard_before = self.ring.written
            try:
                reason = self._pull()
            except Exception as e:  # av.error.* for refused, reset, timed out, bad URL...
                reason = f"{type(e).__name__}: {e}"
            self.connected = False
            if self.stop_event.is_set() or self.disconnected(reason, self.ring.written - heard_before, backoff):
                return
