"""Arm / disarm: a disarmed source keeps scoring and journalling (its alerts marked `disarmed`)
but notifies nobody and raises no Home Assistant problem, e.g. during planned maintenance.

The state is a small JSON file (alerts.arming_file), so it survives a restart and every writer
(`sentinel arm|disarm`, the MQTT command topic, the Home Assistant switch) meets the daemon in
one place: {"<source>" or "*": {"until": unix seconds, or null for until re-armed}}. A
disarm with a duration re-arms itself when it ends; nobody has to come back for it.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from sentinel.files import atomic_write

ALL = "*"
"""The key that disarms every source at once."""


def parse_duration(text: str) -> float:
    """'90s', '15m', '2h', '1d' (or plain seconds) -> seconds; ValueError with what is accepted."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    t = text.strip().lower()
    try:
        seconds = float(t[:-1]) * units[t[-1]] if t and t[-1] in units else float(t)
    except ValueError:
        raise ValueError(f"{text!r} is not a duration; write e.g. 90s, 15m, 2h or 1d") from None
    if not seconds > 0:
        raise ValueError(f"{text!r} must be longer than 0")
    return seconds


class Arming:
    """Reads the file again when it changed (any writer); thread-safe."""

    def __init__(self, path: str | Path, clock=time.time) -> None:
        self.path, self.clock = Path(path), clock
        self._lock = threading.Lock()
        self._state: dict[str, dict] = {}
        self._mtime: float | None = None

    def _load(self) -> dict[str, dict]:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            self._state, self._mtime = {}, None
            return self._state
        if mtime != self._mtime:
            try:
                state = json.loads(self.path.read_text())
                self._state = {k: v for k, v in state.items() if isinstance(v, dict)} if isinstance(state, dict) else {}
            except (OSError, ValueError):
                pass  # being replaced or damaged: keep what was read last
            self._mtime = mtime
        return self._state

    def _save(self, state: dict[str, dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, lambda tmp: tmp.write_text(json.dumps(state, indent=1, sort_keys=True)))
        self._state, self._mtime = state, self.path.stat().st_mtime_ns

    def disarmed_until(self, source: str) -> float | None:
        """None while armed; the time it re-arms (inf: until armed by hand) while disarmed."""
        now = self.clock()
        with self._lock:
            state = self._load()
            ends = []
            for key in (source, ALL):
                entry = state.get(key)
                if entry is None:
                    continue
                until = entry.get("until")
                if until is None or until > now:
                    ends.append(float("inf") if until is None else float(until))
            return max(ends) if ends else None

    def is_armed(self, source: str) -> bool:
        return self.disarmed_until(source) is None

    def disarm(self, source: str | None = None, seconds: float | None = None, by: str = "") -> dict:
        with self._lock:
            state = dict(self._load())
            state[source or ALL] = {"until": None if seconds is None else self.clock() + seconds, "by": by,
                                    "at": self.clock()}
            self._save(state)
            return state

    def arm(self, source: str | None = None) -> dict:
        """Arm one source (or, with None, every source: every disarm is lifted)."""
        with self._lock:
            state = {} if source is None else {k: v for k, v in self._load().items() if k != source}
            self._save(state)
            return state
