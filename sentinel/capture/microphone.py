"""A microphone through PortAudio (sounddevice): any device, any native rate, resampled.

The PortAudio callback runs on a real-time thread: it only copies the block into a bounded
queue. This thread down-mixes, resamples (soxr, streaming) and writes into the ring buffer.
"""

from __future__ import annotations

import queue
import random

import numpy as np

from sentinel.capture.source import Source


class MicrophoneSource(Source):
    def __init__(self, name: str, device: str | int | None, sample_rate: int, buffer_seconds: float,
                 block_seconds: float = 0.05, log=None) -> None:
        super().__init__(name, sample_rate, buffer_seconds, log)
        self.device = device
        self.block_seconds = block_seconds
        self.blocks: queue.Queue[np.ndarray] = queue.Queue(maxsize=200)
        self.dropped_blocks = 0

    def _callback(self, indata, frames, time_info, status) -> None:  # noqa: ARG002 - PortAudio API
        try:
            self.blocks.put_nowait(indata.copy())
        except queue.Full:
            self.dropped_blocks += 1

    def _open(self):
        import sounddevice as sd

        info = sd.query_devices(self.device, "input")
        channels = max(1, min(2, int(info["max_input_channels"])))
        try:  # ask for the model rate first: the host's converter beats ours
            sd.check_input_settings(self.device, channels=channels, samplerate=self.sample_rate, dtype="float32")
            rate = self.sample_rate
        except Exception:
            rate = int(info["default_samplerate"])
        stream = sd.InputStream(device=self.device, channels=channels, samplerate=rate, dtype="float32",
                                blocksize=int(rate * self.block_seconds), callback=self._callback)
        return stream, rate

    def capture(self) -> None:
        import soxr

        delay = 1.0
        while not self.stop_event.is_set():
            try:
                stream, rate = self._open()
            except Exception as e:
                self.error = f"cannot open microphone {self.device!r}: {e}"
                if self.log:
                    self.log.error("source unavailable", error=self.error, retry_s=delay)
                if self.stop_event.wait(delay * random.uniform(0.8, 1.2)):
                    return
                delay = min(60.0, delay * 2)
                self.reconnects += 1
                continue
            resampler = soxr.ResampleStream(rate, self.sample_rate, 1, dtype="float32") if rate != self.sample_rate \
                else None
            with stream:
                self.connected, delay, self.error = True, 1.0, None
                if self.log:
                    self.log.info("source connected", device=self.device, rate=rate)
                while not self.stop_event.is_set():
                    try:
                        block = self.blocks.get(timeout=0.1)
                    except queue.Empty:
                        continue
                    mono = block.mean(axis=1).astype(np.float32)
                    self.emit(resampler.resample_chunk(mono) if resampler else mono)
            self.connected = False
