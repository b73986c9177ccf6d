"""Live sources against real peers: an RTSP server on loopback, and a microphone through a
private PulseAudio null sink (this machine has no sound card). Their outages are in
test_chaos.py. Skipped, with the reason,
where the Debian packages that `.ci/run` installs are missing."""

import json
import os
import signal
import subprocess
from pathlib import Path

from tests.conftest import sentinel_cmd
from tests.helpers.net import wait_until
from tests.integration.test_daemon import receive, write_config

HELPERS = Path(__file__).resolve().parents[1] / "helpers"
SYSTEM_PYTHON = "/usr/bin/python3"


def _has_gst_rtsp() -> bool:
    if not os.path.exists(SYSTEM_PYTHON):
        return False
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    return subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True).returncode == 0


class RtspServer:
    def __init__(self, port: int, wav: Path) -> None:
        self.port, self.wav, self.proc = port, wav, None

    def start(self) -> None:
        self.proc = subprocess.Popen([SYSTEM_PYTHON, str(HELPERS / "rtsp_server.py"), str(self.port), str(self.wav)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready", self.proc.stderr.read()

    def stop(self) -> None:
        if self.proc:
            self.proc.kill()
            self.proc.wait()

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/audio"


def sink_running(env: dict) -> bool:
    """The private PulseAudio's null sink is playing something (so a microphone opens on sound)."""
    out = subprocess.run(["pactl", "list", "short", "sinks"], env=env, capture_output=True, text=True).stdout
    return any("vsink" in line and "RUNNING" in line for line in out.splitlines())


def test_microphone_through_pulseaudio_raises_alerts(pulse, tiny_bundle, machine_data, tmp_path):
    sources = [{"name": "mic", "kind": "microphone", "device": "pulse"}]
    config, endpoint = write_config(tmp_path, tiny_bundle, sources, cooldown_s=0.5)
    # Sound first, so the microphone never opens on the silence of an idle sink.
    wav = machine_data["test"] / "anomalous_1.wav"
    player = subprocess.Popen(["bash", "-c", f"for i in $(seq 20); do paplay --device=vsink {wav}; done"],
                              env=pulse, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_until(lambda: sink_running(pulse), timeout=10), "the player never started"
    daemon = subprocess.Popen([*sentinel_cmd(), "run", "--config", str(config)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=pulse)
    try:
        got = receive(endpoint, "", lambda g: any(t == "alert.mic" for t, _ in g), timeout_s=60)
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=10)
    finally:
        player.kill()
        daemon.kill()
    assert any(t == "alert.mic" for t, _ in got), f"no alert from the microphone; stderr:\n{err[-2000:]}"
    assert daemon.returncode == 0
    journal = [json.loads(x) for x in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert any(j["source"] == "mic" for j in journal)
