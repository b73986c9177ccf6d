"""What a source hears, written to disk as FLAC segments `DIR/<utc-start>.flac`.

One segment per `segment_s` of audio; a gap in the stream (a reconnect, a stall) ends a segment
early, so no file splices two stretches of time. Each segment is written atomically: a kill costs
at most the segment being filled. `sentinel record` and the daemon's learning phase both use it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from sentinel.capture.source import Source
from sentinel.files import atomic_write

MIN_SEGMENT_S = 1.0
"""A stretch shorter than this between two gaps is not worth a file (no window fits it)."""


def segment_name(unix: float) -> str:
    """`20261202T011500.250Z.flac`: sortable by time, no characters a file system minds."""
    ms = int(round((unix % 1) * 1000)) % 1000
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(unix)) + f".{ms:03d}Z.flac"


@dataclass(frozen=True)
class Segment:
    path: Path
    seconds: float
    level_db: float
    """RMS level, dBFS: tells a machine that was running from one that was off."""


def level_db(samples: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if samples.size else 0.0
    return 20 * np.log10(max(rms, 1e-10))


def existing_segments(directory: str | Path) -> list[Segment]:
    """The segments already in `directory` (a resumed recording), oldest first; unreadable ones
    (a disk that filled mid-write before atomic writes, a foreign file) are left out."""
    out = []
    for p in sorted(Path(directory).glob("*.flac")):
        if ".tmp." in p.name:  # killed mid-write: atomic_write's leftover, never a segment
            p.unlink(missing_ok=True)
            continue
        try:
            data, _ = sf.read(p, dtype="float32", always_2d=False)
        except (OSError, RuntimeError, sf.LibsndfileError):
            continue
        info = sf.info(p)
        out.append(Segment(p, info.frames / info.samplerate, level_db(data)))
    return out


class SegmentRecorder:
    """Follows one source's ring buffer from now on and writes every complete segment."""

    def __init__(self, source: Source, directory: str | Path, segment_s: float = 10.0) -> None:
        if segment_s < MIN_SEGMENT_S:
            raise ValueError(f"segment_s must be >= {MIN_SEGMENT_S} s, got {segment_s}")
        self.source, self.directory = source, Path(directory)
        self.sr = source.sample_rate
        self.segment = int(segment_s * self.sr)
        self.pos = source.ring.written
        self.lost_samples = 0
        """Audio that arrived but was overwritten before it could be written (a disk too slow)."""

    def poll(self, final: bool = False, budget_s: float = float("inf")) -> list[Segment]:
        """Write what is complete (with `final`, also the stretch being filled, if long enough), and
        no more segments once `budget_s` seconds are written (a file replayed at full speed)."""
        ring, written = self.source.ring, []
        while sum(s.seconds for s in written) < budget_s:
            if self.pos < ring.oldest:
                self.lost_samples += ring.oldest - self.pos
                self.pos = ring.oldest
            full = self.pos + self.segment
            cut = self.source.timeline.breaks(self.pos, full)
            end = cut if cut is not None else full if full <= ring.written else ring.written if final else None
            if end is None or end <= self.pos:
                break
            if end - self.pos >= MIN_SEGMENT_S * self.sr:  # a shorter stretch between two gaps is dropped
                seg = self._write(self.pos, end - self.pos)
                if seg is not None:
                    written.append(seg)
            self.pos = end
        self.source.consumed = self.pos  # a file replayed at full speed waits for us, as for the pipeline
        return written

    def _write(self, start: int, n: int) -> Segment | None:
        data = self.source.ring.read(start, n)
        if data is None:
            self.lost_samples += n
            return None
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / segment_name(self.source.unix(start))
        atomic_write(path, lambda tmp: sf.write(tmp, data, self.sr, format="FLAC", subtype="PCM_16"))
        return Segment(path, n / self.sr, level_db(data))
