"""Saving the audio around an event as a WAV file."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import soundfile as sf

from sentinel.files import atomic_write


def clip_path(directory: str | Path, source: str, event_id: str, start_iso: str) -> Path:
    stamp = re.sub(r"[^0-9T]", "", start_iso)[:15]
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", source)
    return Path(directory) / f"{safe}-{stamp}-{event_id[:8]}.wav"


def write_clip(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        atomic_write(path, lambda tmp: sf.write(tmp, samples, sample_rate, subtype="PCM_16"))
    except (OSError, RuntimeError) as e:  # libsndfile reports a full disk as a RuntimeError
        raise OSError(getattr(e, "errno", None) or 5, str(e).splitlines()[0] if str(e) else "write failed") from None
