"""Disk retention for event clips: oldest first, by age (alerts.clips_max_days) and by total size
(alerts.clips_max_mb). A full disk is the most reported failure of always-on recorders; the
journal keeps every alert whether or not its clip is still there."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Sweep:
    bytes_used: int
    """What the clips folder holds after the pass."""
    removed: int
    removed_bytes: int


class ClipRetention:
    def __init__(self, directory: str | Path, max_mb: float, max_days: float, log=None, clock=time.time) -> None:
        self.dir, self.max_bytes, self.max_age_s = Path(directory), int(max_mb * 1024 * 1024), max_days * 86400
        self.log, self.clock = log, clock
        self.removed_total = 0
        self.bytes_used = 0

    def sweep(self) -> Sweep:
        """One pass: drop clips past the age, then the oldest until the rest fit; one log line when
        anything went. Clips still being written (`*.tmp.wav`) are left alone."""
        clips = []
        try:
            entries = list(self.dir.glob("*.wav"))
        except OSError:
            entries = []
        for p in entries:
            if p.name.endswith(".tmp.wav"):
                continue
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            clips.append((st.st_mtime, st.st_size, p))
        clips.sort()  # oldest first
        total = sum(size for _, size, _ in clips)
        now, removed, freed = self.clock(), 0, 0
        for mtime, size, p in clips:
            if now - mtime <= self.max_age_s and total <= self.max_bytes:
                break
            try:
                p.unlink()
            except FileNotFoundError:
                pass
            except OSError:
                continue  # not ours to remove (permissions): counted as used, tried again next pass
            total -= size
            removed, freed = removed + 1, freed + size
        self.removed_total += removed
        self.bytes_used = total
        if removed and self.log:
            self.log.info("clips removed (retention)", removed=removed, freed_mb=round(freed / 2**20, 2),
                          used_mb=round(total / 2**20, 2), max_mb=round(self.max_bytes / 2**20, 2),
                          max_days=round(self.max_age_s / 86400, 2))
        return Sweep(total, removed, freed)
