"""The daemon as systemd runs it: a real NOTIFY_SOCKET, SIGHUP reloads, SIGTERM; and the unit file."""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import SUMMARY, sentinel_cmd
from tests.helpers.net import free_port
from tests.integration.test_daemon import receive, write_config

ROOT = Path(__file__).resolve().parents[2]


class NotifySocket:
    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.path = path
        self.messages: list[str] = []

    def wait_for(self, needle: str, timeout: float = 60.0, after: int = 0) -> int:
        """Index of the first message at or after `after` containing `needle`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i in range(after, len(self.messages)):
                if needle in self.messages[i]:
                    return i
            with contextlib.suppress(TimeoutError):
                self.messages.append(self.sock.recv(4096).decode())
        raise AssertionError(f"{needle!r} never arrived; got {self.messages}")


def test_lifecycle_ready_watchdog_reload_stop(tiny_bundle, machine_data, tmp_path):
    one = {"name": "one", "kind": "file", "path": str(machine_data["test"] / "normal_3.wav"), "realtime": True,
           "loop": True}
    config, endpoint = write_config(tmp_path, tiny_bundle, [one])
    metrics_port = free_port()
    config.write_text(yaml.safe_dump({**yaml.safe_load(config.read_text()),
                                      "metrics": {"enabled": True, "port": metrics_port}}))
    notify = NotifySocket(tmp_path / "notify.sock")
    env = {**os.environ, "NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "1000000", "OMP_NUM_THREADS": "2"}
    proc = subprocess.Popen([*sentinel_cmd(), "run", "--config", str(config)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        ready = notify.wait_for("READY=1")
        assert "STATUS=one up" in notify.messages[ready]
        notify.wait_for("WATCHDOG=1", after=ready)
        notify.wait_for("WATCHDOG=1", after=notify.wait_for("WATCHDOG=1", after=ready) + 1)

        # Reload with a second source: RELOADING then READY; the first source keeps its stream.
        cfg = yaml.safe_load(config.read_text())
        cfg["sources"].append({**one, "name": "two", "path": str(machine_data["test"] / "anomalous_2.wav")})
        config.write_text(yaml.safe_dump(cfg))
        mark = len(notify.messages)
        proc.send_signal(signal.SIGHUP)
        reloading = notify.wait_for("RELOADING=1", after=mark)
        notify.wait_for("READY=1", after=reloading)
        both = receive(endpoint, "status.",
                       lambda got: {m["source"] for _, m in got} >= {"one", "two"} and len(got) > 4)
        ones = [m["windows_scored"] for _, m in both if m["source"] == "one"]
        assert ones == sorted(ones) and ones[0] > 0, "source one restarted instead of carrying on"

        # A broken config is refused; the running one stays in force.
        config.write_text("daemon: {max_batch: -1}\n")
        mark = len(notify.messages)
        proc.send_signal(signal.SIGHUP)
        notify.wait_for("READY=1", after=notify.wait_for("RELOADING=1", after=mark))
        still = receive(endpoint, "status.two", lambda got: len(got) >= 2)
        assert still, "sources stopped after a rejected reload"

        page = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
        scored = [float(x.split()[-1]) for x in page.splitlines()
                  if x.startswith('sentinel_windows_scored_total{source="one"}')]
        assert scored and scored[0] > 0, page[:2000]
        for name in ("sentinel_batch_size_bucket", "sentinel_inference_seconds_bucket", "sentinel_threshold",
                     "sentinel_source_connected", "sentinel_dropped_samples", "sentinel_source_reconnects"):
            assert name in page
        for source in ("one", "two"):  # every source's gauges, not only the last one's
            assert f'sentinel_threshold{{source="{source}"}}' in page
            assert f'sentinel_audio_lost_seconds{{source="{source}"}}' in page

        mark = len(notify.messages)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        notify.wait_for("STOPPING=1", after=mark, timeout=5)
    finally:
        proc.kill()
        err = proc.stderr.read()
    assert proc.returncode == 0, err
    journal = [json.loads(x) for x in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert any(j["topic"] == "alert.two" for j in journal), "the reloaded source's alerts are not in the journal"
    assert "reload rejected" in err and "daemon.max_batch" in err
    assert "reloaded" in err


UNIT = ROOT / "sentinel" / "service" / "sentinel.service"


@pytest.fixture
def unit_for_here(tmp_path):
    """The shipped unit with ExecStart pointing at this checkout's script (verify checks it exists)."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not installed")
    text = UNIT.read_text().replace("/opt/sentinel/venv/bin/sentinel", sentinel_cmd()[0])
    path = tmp_path / "sentinel.service"
    path.write_text(text)
    return path


def test_unit_verifies_clean(unit_for_here):
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit_for_here)], capture_output=True,
                          text=True)
    SUMMARY.append(f"systemd-analyze verify --man=no sentinel.service: rc {proc.returncode}, stderr {proc.stderr!r}")
    assert proc.returncode == 0 and proc.stderr == ""


def test_unit_exposure_is_low(unit_for_here):
    proc = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit_for_here)], capture_output=True,
                          text=True)
    line = [x for x in proc.stdout.splitlines() if "Overall exposure level" in x][0]
    SUMMARY.append(f"systemd-analyze security --offline=true sentinel.service: {line.strip()}")
    exposure = float(line.split(":")[1].split()[0])
    assert exposure <= 2.0
