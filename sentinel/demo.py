"""Demo data and the built-in demo bundle.

`python -m sentinel.demo data OUT_DIR`    write generated normal clips and a test recording
`python -m sentinel.demo assets`          rebuild sentinel/demo_assets/ (bundle + recording) with the
                                          project's own `sentinel train` and `sentinel calibrate`
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from sentinel import synth
from sentinel.synth import write_demo_set

ASSETS = Path(__file__).resolve().parent / "demo_assets"
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"


def build_assets(seed: int = 0) -> None:
    """Train and calibrate the demo bundle on generated normal audio; write a looping recording
    with two anomalies (a rattle at 8 s, a whine at 20 s) for `sentinel run`."""
    with tempfile.TemporaryDirectory() as tmp:
        data = write_demo_set(Path(tmp) / "data", seed=seed)
        bundle = Path(tmp) / "bundle"
        cli = [sys.executable, "-m", "sentinel"]
        subprocess.run([*cli, "train", "--config", str(CONFIG), "--data", str(data["normal"]), "--out", str(bundle),
                        "--seed", str(seed)], check=True)
        subprocess.run([*cli, "calibrate", str(bundle), "--normal", str(data["normal"]), "--device", "cpu"],
                       check=True)
        if ASSETS.exists():
            shutil.rmtree(ASSETS)
        (ASSETS / "bundle").mkdir(parents=True)
        for name in ("weights.safetensors", "bundle.json"):
            shutil.copy(bundle / name, ASSETS / "bundle" / name)
    rng = np.random.default_rng(seed + 1)
    rec = synth.inject(rng, synth.machine(rng, 30.0), at_s=8.0, kind="rattle", seconds=1.0)
    rec = synth.inject(rng, rec, at_s=20.0, kind="whine", seconds=1.5)
    sf.write(ASSETS / "recording.flac", rec, 16000)
    (ASSETS / "README.md").write_text(
        "# Built-in demo assets\n\nMade by `python -m sentinel.demo assets` (= `make demo-assets`): a bundle trained "
        "and calibrated by `sentinel train --config configs/demo.yaml` and `sentinel calibrate` on generated normal "
        "machine sound, and a 30 s recording of the same machine with a rattle at 8 s and a whine at 20 s.\n"
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["data"] and len(argv) == 2:
        paths = write_demo_set(argv[1])
        print(f"demo data: normal clips in {paths['normal']}, test recording {paths['recording']} "
              "(a rattle from 12.0 s to 13.0 s)")
        return 0
    if argv == ["assets"]:
        build_assets()
        print(f"wrote {ASSETS}")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
