"""The wheel is what a user installs: built with `python -m build`, installed into a fresh venv
(torch and the other dependencies taken from this environment, as a site would have them), it
runs the demo from its own package data until an alert arrives on ZeroMQ and the dashboard
serves its page, and `sentinel install-service` puts the unit and the example config in place."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import urllib.request
from pathlib import Path

import yaml

from tests.helpers.net import free_port, wait_until
from tests.integration.test_daemon import receive

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_installs_and_runs_the_demo(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(ROOT)],
                   check=True, capture_output=True, cwd=ROOT)
    wheel = next(dist.glob("sentinel_audio-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    vpy = venv / "bin" / "python"
    # The dependencies as this environment has them (torch is gigabytes): their folders on the new
    # venv's path, read after its own site-packages, so the wheel's `sentinel` is the one imported.
    purelib = subprocess.run([str(vpy), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    Path(purelib, "environment.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([str(vpy), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)], check=True)
    where = subprocess.run([str(vpy), "-c", "import sentinel, sentinel.config as c; print(sentinel.__file__); "
                            "print(c.DEMO_DIR)"], check=True, capture_output=True, text=True, cwd=tmp_path)
    module, demo = where.stdout.split()
    assert module.startswith(str(venv)), f"the wheel's package is not the one imported: {module}"

    # The demo from the installed package's own bundle and recording, on free ports.
    port, endpoint = free_port(), f"tcp://127.0.0.1:{free_port()}"
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({
        "device": "cpu", "daemon": {"bundle": f"{demo}/bundle"},
        "sources": [{"name": "demo", "kind": "file", "path": f"{demo}/recording.flac", "loop": True}],
        "alerts": {"endpoint": endpoint, "journal": str(tmp_path / "alerts.jsonl"), "clips_dir": None,
                   "arming_file": str(tmp_path / "arming.json")},
        "web": {"port": port}}))
    exe = venv / "bin" / "sentinel"
    proc = subprocess.Popen([str(exe), "run", "--config", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "2"})
    try:
        got = receive(endpoint, "alert.", lambda g: len(g) >= 1, timeout_s=90)
        assert got, "no alert from the installed wheel"
        page = wait_until(lambda: _get(f"http://127.0.0.1:{port}/"), timeout=20)
        assert page and "<html" in page.lower() and "app.js" in page
        assert "uPlot" in (_get(f"http://127.0.0.1:{port}/static/vendor/uPlot.iife.min.js") or "")
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err[-2000:]

    out = subprocess.run([str(exe), "install-service", "--root", str(tmp_path / "root")], check=True,
                         capture_output=True, text=True)
    placed = json.loads(out.stdout.splitlines()[0])
    unit = Path(placed["unit"]).read_text()
    assert f"ExecStart={exe} run --config /etc/sentinel/sentinel.yaml" in unit
    assert "# sources:" in Path(placed["config"]).read_text()  # the example, sources commented out
    assert "systemctl enable --now sentinel" in out.stderr


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.read().decode()
    except OSError:
        return None
