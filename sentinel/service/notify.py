"""sd_notify over the NOTIFY_SOCKET datagram socket: READY, STATUS, WATCHDOG, RELOADING, STOPPING.

Does nothing outside systemd. The variable is removed from the environment at once, so child
processes (ffmpeg, helpers) never talk to systemd in our name.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time


class Notifier:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        addr = env.pop("NOTIFY_SOCKET", None)
        self.address: str | None = None
        if addr:
            self.address = "\0" + addr[1:] if addr.startswith("@") else addr
        usec = env.pop("WATCHDOG_USEC", None)
        pid = env.pop("WATCHDOG_PID", None)
        ours = pid is None or pid == str(os.getpid())
        self.watchdog_interval: float | None = int(usec) / 1e6 / 2 if usec and ours else None
        """Seconds between WATCHDOG=1 pings: half of what systemd allows."""
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) if self.address else None

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, *fields: str) -> None:
        if self._sock is None or self.address is None:
            return
        with contextlib.suppress(OSError):  # systemd gone or socket full: never a reason to stop monitoring
            self._sock.sendto("\n".join(fields).encode(), self.address)

    def ready(self, status: str | None = None) -> None:
        self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")

    def reloading(self) -> None:
        self.send("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
