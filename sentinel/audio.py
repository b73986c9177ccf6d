"""Reading recordings: any container libsndfile or FFmpeg reads, down-mixed and resampled."""

from __future__ import annotations

import glob
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from sentinel.errors import AudioError, DataError

AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".aiff", ".aif"})


def _read_soundfile(path: Path) -> tuple[np.ndarray, int]:
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return data.mean(axis=1), int(sr)


def _read_av(path: Path) -> tuple[np.ndarray, int]:
    import av  # imported lazily: only for what libsndfile cannot read

    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise AudioError(f"{path}: no audio stream; give a recording with sound in it")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono")
        chunks = []
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
        sr = stream.codec_context.sample_rate or stream.rate
    return (np.concatenate(chunks) if chunks else np.zeros(0, np.float32)), int(sr)


def _wav_shortfall(path: Path) -> tuple[int, int] | None:
    """(bytes the WAV header's data chunk declares, bytes present) when the file ends early: a copy
    or a recording cut off. libsndfile reads such a file without a word."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            size = path.stat().st_size
            while True:
                chunk = f.read(8)
                if len(chunk) < 8:
                    return None
                n = int.from_bytes(chunk[4:], "little")
                if chunk[:4] == b"data":
                    present = size - f.tell()
                    # 0 and 0xFFFFFFFF: "length unknown" (a stream written as it was recorded)
                    return (n, present) if 0 < n < 0xFFFFFFFF and present < n else None
                f.seek(n + (n & 1), 1)
    except OSError:
        return None


def load_audio(path: str | Path, sample_rate: int) -> torch.Tensor:
    """Mono float32 waveform [N] at `sample_rate`. Raises AudioError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes); re-record or remove it")
    try:
        data, sr = _read_soundfile(path)
    except Exception as sf_err:  # libsndfile refuses it: let FFmpeg try before giving up
        try:
            data, sr = _read_av(path)
        except AudioError:
            raise
        except Exception:
            raise AudioError(f"{path}: cannot decode audio ({sf_err}); is the file complete?") from None
    if data.size == 0:
        raise AudioError(f"{path}: holds no audio samples; re-record or remove it")
    short = _wav_shortfall(path)
    if short is not None:
        raise AudioError(f"{path}: truncated (its header declares {short[0]} bytes of audio, the file holds "
                         f"{short[1]}); copy it again or re-export it")
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: contains NaN or infinite samples; re-export it")
    wave = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))
    if sr != sample_rate:
        wave = AF.resample(wave, sr, sample_rate)
    return wave


def find_files(paths: Iterable[str | Path], extensions: set[str]) -> list[Path]:
    """Expand files, folders (recursively, by extension) and glob patterns into a sorted list."""
    found: set[Path] = set()
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found.update(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in extensions)
        elif p.is_file():
            found.add(p)
        elif glob.has_magic(str(p)):
            found.update(Path(f) for f in glob.glob(str(p), recursive=True) if Path(f).is_file())
        else:
            raise DataError(f"{p}: no such file or folder")
    return sorted(found)


def find_audio(paths: Iterable[str | Path]) -> list[Path]:
    """Audio files under files, folders and glob patterns."""
    return find_files(paths, AUDIO_EXTENSIONS)


def windowable(files: Iterable[Path], sample_rate: int, window_samples: int, on_error: Callable[[str], None],
               tile_short: bool = False) -> Iterator[tuple[Path, torch.Tensor]]:
    """(path, waveform) of every file that reads and holds at least one window; the others are
    named through `on_error` (one line each) and passed over. `tile_short` repeats a clip shorter
    than a window to fill one (dataset clips: silence would look anomalous)."""
    for f in files:
        try:
            wave = load_audio(f, sample_rate)
        except AudioError as e:
            on_error(str(e))
            continue
        if tile_short and 0 < wave.numel() < window_samples:
            wave = wave.repeat(-(-window_samples // wave.numel()))[:window_samples]
        if wave.numel() < window_samples:
            on_error(f"{f}: {wave.numel() / sample_rate:.2f} s is shorter than one window "
                     f"({window_samples / sample_rate:.2f} s)")
            continue
        yield f, wave
