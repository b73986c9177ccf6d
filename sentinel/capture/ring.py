"""A fixed-capacity ring of float32 mono samples, written by one capture thread, read by the
inference loop. Positions are absolute sample counts since the source started, so a reader
can tell exactly what it missed when it falls more than a buffer behind."""

from __future__ import annotations

import threading

import numpy as np


class RingBuffer:
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"ring buffer capacity must be >= 1 sample, got {capacity}")
        self.capacity = capacity
        self._buf = np.zeros(capacity, dtype=np.float32)
        self._written = 0
        self._lock = threading.Lock()

    @property
    def written(self) -> int:
        """Samples written since the start (the absolute position of the next sample)."""
        with self._lock:
            return self._written

    @property
    def oldest(self) -> int:
        """Absolute position of the oldest sample still held."""
        with self._lock:
            return max(0, self._written - self.capacity)

    def write(self, samples: np.ndarray) -> None:
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        if x.size > self.capacity:  # only the newest capacity samples can survive anyway
            with self._lock:
                self._written += x.size - self.capacity
            x = x[-self.capacity :]
        with self._lock:
            pos = self._written % self.capacity
            first = min(x.size, self.capacity - pos)
            self._buf[pos : pos + first] = x[:first]
            self._buf[: x.size - first] = x[first:]
            self._written += x.size

    def tail(self, n: int) -> np.ndarray | None:
        """A copy of the newest min(n, held) samples (one lock: written and oldest agree), or None if empty."""
        with self._lock:
            start = max(0, self._written - self.capacity, self._written - n)
            n = self._written - start
            if n <= 0:
                return None
            pos = start % self.capacity
            first = min(n, self.capacity - pos)
            return np.concatenate([self._buf[pos : pos + first], self._buf[: n - first]])

    def read(self, start: int, n: int) -> np.ndarray | None:
        """A copy of samples [start, start + n), or None if any of them is gone or not yet here."""
        with self._lock:
            if start < max(0, self._written - self.capacity) or start + n > self._written or n > self.capacity:
                return None
            pos = start % self.capacity
            first = min(n, self.capacity - pos)
            return np.concatenate([self._buf[pos : pos + first], self._buf[: n - first]])
