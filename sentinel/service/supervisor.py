"""When to restart a part that died: exponential back-off, and a rate limit after which we stop
trying (for the pipeline: stop feeding the watchdog, so that systemd restarts the service)."""

from __future__ import annotations

import time
from collections import deque


class RestartPolicy:
    def __init__(self, first_delay: float = 1.0, max_delay: float = 60.0, max_restarts: int = 5,
                 window_s: float = 300.0, clock=time.monotonic) -> None:
        self.first_delay, self.max_delay = first_delay, max_delay
        self.max_restarts, self.window_s = max_restarts, window_s
        self.clock = clock
        self._restarts: deque[float] = deque()
        self._failed_at: float | None = None
        self.delay = first_delay

    def failed(self) -> None:
        """Record a failure (once per death)."""
        if self._failed_at is None:
            self._failed_at = self.clock()

    @property
    def exhausted(self) -> bool:
        """More than `max_restarts` within `window_s`: stop trying."""
        now = self.clock()
        while self._restarts and now - self._restarts[0] > self.window_s:
            self._restarts.popleft()
        return len(self._restarts) >= self.max_restarts

    def due(self) -> bool:
        """True when a restart should happen now (and records it)."""
        if self._failed_at is None or self.exhausted:
            return False
        now = self.clock()
        if now - self._failed_at < self.delay:
            return False
        self._restarts.append(now)
        self._failed_at = None
        self.delay = min(self.max_delay, self.delay * 2)
        return True

    def healthy_for(self, seconds: float) -> None:
        """Reset the back-off once the part has run well for a while."""
        if self._failed_at is None and self._restarts and self.clock() - self._restarts[-1] > seconds:
            self.delay = self.first_delay
