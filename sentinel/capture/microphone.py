"""A microphone through PortAudio (sounddevice): any device, any native rate, resampled.

The PortAudio callback runs on a real-time thread: it only copies the block into a bounded
queue. This thread down-mixes, resamples (soxr, streaming) and writes into the ring buffer.
"""

from __future__ import annotations

import queue
import time

import numpy as np

from sentinel.capture.source import Backoff, Source


class MicrophoneSource(Source):
    def __init__(self, name: str, device: str | int | None, sample_rate: int, buffer_seconds: float,
                 block_seconds: float = 0.05, reconnect_max_s: float = 5.0, stall_seconds: float = 5.0,
                 log=None) -> None:
        super().__init__(name, sample_rate, buffer_seconds, log)
        self.reconnect_max_s = reconnect_max_s
        self.stall_seconds = stall_seconds
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

        backoff = Backoff(1.0, self.reconnect_max_s)
        while not self.stop_event.is_set():
            try:
                stream, rate = self._open()
            except Exception as e:
                self.error = f"cannot open microphone {self.device!r}: {e}"
                wait = backoff.next()
                if self.log:
                    self.log.error("source unavailable", error=self.error, retry_s=round(wait, 2))
                if self.stop_event.wait(wait):
                    return
                self.reconnects += 1
                continue
            resampler = soxr.ResampleStream(rate, self.sample_rate, 1, dtype="float32") if rate != self.sample_rate \
                else None
            heard_before = self.ring.written
            with stream:
                self.connected, self.error = True, None
                self.resumed()
                if self.log:
                    self.log.info("source connected", device=self.device, rate=rate)
                reason = self._listen(resampler)
            self.connected = False
            # A device that vanished: PortAudio may stop calling back, or the sound server may move
            # the stream to a dummy source that delivers exact zeros (no real microphone does).
            if reason is None or self.disconnected(reason, self.ring.written - heard_before, backoff):
                return

    def _listen(self, resampler) -> str | None:
        """Read blocks until stop (None) or the device looks gone (why)."""
        last_block = last_sound = time.monotonic()
        while not self.stop_event.is_set():
            try:
                block = self.blocks.get(timeout=0.1)
            except queue.Empty:
                if time.monotonic() - last_block > self.stall_seconds:
                    return f"no audio from the device for {self.stall_seconds:.0f} s"
                continue
            now = last_block = time.monotonic()
            if np.any(block):
                last_sound = now
            elif now - last_sound > self.stall_seconds:
                return f"only digital zeros for {self.stall_seconds:.0f} s (device gone?)"
            mono = block.mean(axis=1).astype(np.float32)
            self.emit(resampler.resample_chunk(mono) if resampler else mono)
        return None
