"""Fleets for the held-out benchmark (benchmarks/heldout.py --sets fleet-fans fleet-pumps): families
of similar units, as a site runs them. The units of one family share a design; each has its own
speed (the ranges overlap), timbre and resonances, a little apart. Faults include ones that move a
unit's signature (a resonance that shifts, a speed off its own range) as well as added sound.
Built on ../shared/bench/machinesynth.py (same renderer, same microphone finish)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared" / "bench"))
import machinesynth as ms  # noqa: E402

BASES = {
    # Written for the fleet benchmark (round 6), not tuned on: ceiling fans of one model, and pumps of one line.
    "fans": ms.Machine("fan", f0=22.0, f0_range=0.04, harmonics=(0.5, 0.25, 0.12), tone_order=5, tone_amp=0.45,
                       noise_bands=((700.0, 0.8, 1.0), (2600.0, 1.5, 0.5)), noise_level=0.7, am_depth=0.06),
    "pumps": ms.Machine("pump", f0=24.5, f0_range=0.04, harmonics=(0.9, 0.6, 0.3, 0.25, 0.1), tone_order=7,
                        tone_amp=0.3, noise_bands=((1200.0, 1.0, 1.0), (4200.0, 2.5, 0.4)), noise_level=0.4,
                        am_depth=0.08),
}
UNITS = 4


def units(family: str, seed: int = 23) -> dict[str, ms.Machine]:
    """The family's units: speed within +-5 % of the design (so one unit's range overlaps the next's),
    harmonic and tone levels within +-30 %, resonances within +-10 %."""
    base = BASES[family]
    rng = np.random.default_rng([seed, list(BASES).index(family)])
    out = {}
    for u in range(UNITS):
        speed = 1 + 0.05 * (2 * u / (UNITS - 1) - 1) + rng.uniform(-0.005, 0.005)
        out[f"{family[:-1]}{u + 1}"] = dataclasses.replace(
            base, name=f"{base.name}{u + 1}", f0=base.f0 * speed,
            harmonics=tuple(a * rng.uniform(0.7, 1.3) for a in base.harmonics),
            tone_amp=base.tone_amp * rng.uniform(0.7, 1.3),
            noise_bands=tuple((f * rng.uniform(0.9, 1.1), q, g * rng.uniform(0.8, 1.2))
                              for f, q, g in base.noise_bands))
    return out


def fault_resonance(rng, m, seconds):
    """A resonance that moves (a cracked housing, a loose guard): one noise band's centre shifts 15-30 %."""
    k = int(rng.integers(len(m.noise_bands)))
    shift = rng.uniform(1.15, 1.3) ** rng.choice([-1, 1])
    bands = tuple((f * shift, q, g) if i == k else (f, q, g) for i, (f, q, g) in enumerate(m.noise_bands))
    return ms.render_machine(rng, dataclasses.replace(m, noise_bands=bands), seconds)[0]


def fault_harmonic(rng, m, seconds):
    """A loosened mount: one harmonic (2x-3x) grows 1.8-2.5x, steadily."""
    return ms.render_machine(rng, m, seconds, harmonic_gain={int(rng.integers(2, 4)): rng.uniform(1.8, 2.5)})[0]


FAULTS = {
    "resonance": fault_resonance,
    "harmonic": fault_harmonic,
    "speed": lambda r, m, s: ms.fault_speed(r, m, s, offset=r.uniform(0.02, 0.04)),
    "bearing": lambda r, m, s: ms.fault_bearing(r, m, s, snr_db=r.uniform(-26, -16)),
}


def build_fleet(family: str, out: Path, seconds: float = 5.0, n_train: int = 30, n_test: int = 20,
                seed: int = 29) -> list[str]:
    """out/<unit>/train/normal_*.wav, out/<unit>/test/{normal,anomalous_<fault>}_*.wav; the unit names."""
    us = units(family)
    for j, (name, m) in enumerate(us.items()):
        rng = np.random.default_rng([seed, list(BASES).index(family), j])
        for sub, n in (("train", n_train), ("test", n_test)):
            for i in range(n):
                x = ms.finish(rng, ms.render_machine(rng, m, seconds)[0])
                ms.write(out / name / sub / f"normal_{i:04d}.wav", x)
        kinds = sorted(FAULTS)
        for i in range(n_test):
            kind = kinds[i % len(kinds)]
            ms.write(out / name / "test" / f"anomalous_{kind}_{i:04d}.wav",
                     ms.finish(rng, FAULTS[kind](rng, m, seconds)))
    return list(us)
