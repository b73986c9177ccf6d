"""Synthetic machine sound with injectable anomalies, for the demo and the tests.

A hum (shaft rate with harmonics, slowly wandering speed), a blade-pass tone and coloured
noise; each clip varies its operating point a little, as real machines do. Anomalies are
added at a chosen time: a rattle of clicks, a whine, or a knock. numpy only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


def machine(rng: np.random.Generator, seconds: float, sr: int = 16000, f0: float = 50.0) -> np.ndarray:
    n = int(seconds * sr)
    t = np.arange(n) / sr
    f = f0 * (1 + rng.uniform(-0.02, 0.02)) * (1 + 0.003 * np.sin(2 * np.pi * rng.uniform(0.1, 0.3) * t))
    phase = 2 * np.pi * np.cumsum(f) / sr
    x = sum(a * rng.uniform(0.8, 1.2) * np.sin(k * phase + rng.uniform(0, 6.28))
            for k, a in enumerate((1.0, 0.5, 0.3, 0.2, 0.1), start=1))
    x = x + 0.25 * np.sin(12 * phase)  # blade pass
    noise = np.fft.irfft(np.fft.rfft(rng.normal(size=n)) / np.sqrt(1 + np.fft.rfftfreq(n, 1 / sr) / 300), n)
    x = x + 0.3 * noise / (noise.std() + 1e-9)
    return (0.1 * x / (np.abs(x).max() + 1e-9)).astype(np.float32)


def inject(rng: np.random.Generator, x: np.ndarray, at_s: float, kind: str = "rattle", seconds: float = 0.6,
           sr: int = 16000, level: float = 1.0) -> np.ndarray:
    """Add an anomaly of `kind` (rattle, whine, knock) starting at `at_s`."""
    y = x.copy()
    i0, n = int(at_s * sr), int(seconds * sr)
    t = np.arange(n) / sr
    rms = float(np.sqrt(np.mean(x**2)))
    if kind == "rattle":
        ev = np.zeros(n)
        for c in rng.integers(0, n - 200, size=int(25 * seconds)):
            ev[c : c + 200] += np.exp(-np.arange(200) / 30) * rng.normal(size=200)
        ev *= 3 * rms / (np.sqrt(np.mean(ev**2)) + 1e-9)
    elif kind == "whine":
        ev = 1.5 * rms * np.sin(2 * np.pi * (3000 + 200 * t) * t) * np.hanning(n)
    elif kind == "knock":
        ev = np.zeros(n)
        ev[: min(n, 1600)] = 8 * rms * np.exp(-np.arange(min(n, 1600)) / 200) * np.sin(
            2 * np.pi * 180 * np.arange(min(n, 1600)) / sr)
    else:
        raise ValueError(f"unknown anomaly kind {kind!r}; use rattle, whine or knock")
    end = min(len(y), i0 + n)
    y[i0:end] += level * ev[: end - i0].astype(np.float32)
    return y


def write_demo_set(out: str | Path, n_normal: int = 24, seconds: float = 4.0, seed: int = 0,
                   sr: int = 16000) -> dict[str, Path]:
    """normal/ (training and calibration clips) and recording.wav: 20 s with a rattle at 12 s."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    (out / "normal").mkdir(parents=True, exist_ok=True)
    for i in range(n_normal):
        sf.write(out / "normal" / f"normal_{i:03d}.wav", machine(rng, seconds, sr), sr)
    rec = inject(rng, machine(rng, 20.0, sr), at_s=12.0, kind="rattle", seconds=1.0, sr=sr)
    sf.write(out / "recording.wav", rec, sr)
    return {"normal": out / "normal", "recording": out / "recording.wav"}
