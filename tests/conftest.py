"""Shared fixtures: generated audio and a tiny bundle trained once per session by the real CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from sentinel import synth

torch.set_num_threads(2)

pytest_plugins = ["tests.helpers.no_skip_in_ci"]

# Small enough that training and scoring take seconds on two cores; same code paths as default.
TINY_CONFIG = """
device: cpu
features: {n_mels: 32, window_frames: 16}
model: {base_channels: 8, channel_mults: [1, 2, 2]}
scoring: {hop_seconds: 0.128, batch_size: 32}
training: {steps: 40, batch_size: 16, warmup_steps: 5, checkpoint_every: 20, fit_windows: 256}
"""


def sentinel_cmd() -> list[str]:
    """The installed console script, as a user runs it."""
    exe = shutil.which("sentinel", path=str(Path(sys.executable).parent)) or shutil.which("sentinel")
    if exe is None:
        pytest.fail("the `sentinel` console script is not installed; run `pip install -e .`")
    return [exe]


def run_cli(*args: str, check: bool = False, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    proc = subprocess.run([*sentinel_cmd(), *args], capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"sentinel {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    p.write_text(TINY_CONFIG)
    return p


@pytest.fixture(scope="session")
def machine_data(tmp_path_factory) -> dict[str, Path]:
    """normal/ (training), calib/ (more normal), test/normal_*.wav and test/anomalous_*.wav."""
    root = tmp_path_factory.mktemp("machine")
    rng = np.random.default_rng(1)
    for sub in ("normal", "calib", "test"):
        (root / sub).mkdir()
    for i in range(12):
        sf.write(root / "normal" / f"n{i:02d}.wav", synth.machine(rng, 3.0), 16000)
    for i in range(4):
        sf.write(root / "calib" / f"c{i:02d}.wav", synth.machine(rng, 3.0), 16000)
    for i in range(4):
        sf.write(root / "test" / f"normal_{i}.wav", synth.machine(rng, 3.0), 16000)
        x = synth.inject(rng, synth.machine(rng, 3.0), at_s=1.0, kind=("rattle", "whine")[i % 2], seconds=1.0)
        sf.write(root / "test" / f"anomalous_{i}.wav", x, 16000)
    return {k: root / k for k in ("normal", "calib", "test")} | {"root": root}


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, tiny_config, machine_data) -> Path:
    """A real bundle: `sentinel train` on generated normal audio, then `sentinel calibrate`."""
    out = tmp_path_factory.mktemp("bundle") / "tiny"
    proc = run_cli("train", "--data", str(machine_data["normal"]), "--out", str(out), "--config",
                   str(tiny_config), "--seed", "3", check=True)
    assert json.loads(proc.stdout.strip().splitlines()[-1])["steps"] == 40
    run_cli("calibrate", str(out), "--normal", str(machine_data["calib"]), "--device", "cpu", check=True)
    return out


SUMMARY: list[str] = []
"""Lines tests want shown after the run (e.g. the systemd unit checks), pass or fail."""


def pytest_terminal_summary(terminalreporter) -> None:
    if SUMMARY:
        terminalreporter.section("service checks")
        for line in SUMMARY:
            terminalreporter.write_line(line)


@pytest.fixture
def pulse(tmp_path):
    """A private PulseAudio with a null sink, as ENVIRONMENT.md describes; yields its env."""
    if not shutil.which("pulseaudio") or not shutil.which("paplay"):
        pytest.skip("pulseaudio not installed (see .ci/run)")
    run = tmp_path / "pulse"
    run.mkdir()
    env = {**os.environ, "XDG_RUNTIME_DIR": str(run), "HOME": str(run), "PULSE_SERVER": f"unix:{run}/native"}
    proc = subprocess.Popen(
        ["pulseaudio", "--daemonize=no", "--exit-idle-time=-1", "-n", "--use-pid-file=no",
         "-L", f"module-native-protocol-unix socket={run}/native auth-anonymous=1",
         "-L", "module-null-sink sink_name=vsink rate=16000 channels=1",
         "-L", "module-always-sink"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 10
    while subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode != 0:
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail(f"pulseaudio did not start: {proc.stderr.read().decode()[-500:]}")
        time.sleep(0.1)
    subprocess.run(["pactl", "set-default-source", "vsink.monitor"], env=env, check=True)
    yield env
    proc.terminate()
    proc.wait(timeout=5)
