"""`sentinel train` under torchrun: 2 CPU processes (gloo) take the same steps as one process."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sentinel.bundle import load_bundle
from tests.conftest import run_cli


def test_two_processes_match_one(tiny_config, machine_data, tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    if torchrun is None:
        pytest.skip("torchrun not found beside this Python")
    args = ["train", "--data", str(machine_data["normal"]), "--config", str(tiny_config), "--steps", "6",
            "--seed", "11", "--device", "cpu"]
    run_cli(*args, "--out", str(tmp_path / "single"), check=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", "-m", "sentinel", "--log-level", "warning",
                           *args, "--out", str(tmp_path / "ddp")], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count('"bundle_id"') == 1  # only rank 0 reports and writes
    single = load_file(str(tmp_path / "single" / "weights.safetensors"))
    ddp = load_file(str(tmp_path / "ddp" / "weights.safetensors"))
    assert single.keys() == ddp.keys()
    for k in single:
        if k.startswith("model."):
            torch.testing.assert_close(ddp[k], single[k], atol=1e-4, rtol=1e-3, msg=k)
    bundle = load_bundle(tmp_path / "ddp")
    assert bundle.training["steps"] == 6
    assert (bundle.training["world_size"], bundle.training["batch_per_process"]) == (2, 8)  # each did half
